//! noisescope's benchmark (`noisescope bench`): SPEC §6's workloads W1–W6 (and the matmul and copy rates that bound
//! them) on the chosen backend, as rows that join with `../shared/bench/torch_anchor.py`'s,
//! and the CNN rows (Zhu et al.'s `convyu` on 1200 images), which have no PyTorch twin.
//!
//! Every row carries the anchor's `workload`, `params` keys and `params_str`, plus `anchor`:
//! the PyTorch rows' `params_str` it is to be compared with (`scripts/bench_ratio.py` joins the
//! two files on (workload, anchor) and prints noisescope / PyTorch per workload). Sizes,
//! data (standard normal inputs, labels uniform in 0..9, prefixes of one 10 000-sample pool),
//! initialization (PyTorch's `nn.Linear` default) and timing rules are the anchor's. Every
//! workload checks its answer (HVP against finite differences, eigenpair residuals, the trace
//! of the low-rank noise…): a row whose check fails is an error and the command fails.
//!
//! The JSON document is rewritten after every row, so an interrupted bench keeps its rows.

#![warn(missing_docs)]

pub mod timing;
mod workloads;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Result, bail};
use burn::prelude::Device;
use indicatif::ProgressBar;
use noisescope_data::Features;
use serde_json::{Map, Value, json};
use timing::{Stats, Timing};

/// The workload keys, in run order: the hardware rates first, so that a bench cut short by
/// `--budget-s` still has the floors.
pub const WORKLOADS: [&str; 8] = ["HW", "W1", "W2", "W3", "W4", "W5", "W6", "CNN"];

/// The anchor's problem sizes (its FULL and QUICK configs).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Sizes {
    /// (hidden width d, batch B) of the W1 train steps.
    pub w1_configs: Vec<(usize, usize)>,
    /// W1's losses ("mse", "ce").
    pub w1_losses: Vec<&'static str>,
    /// Distinct batches cycled by the step workloads (W1, W6).
    pub w1_pool_batches: usize,
    /// Learning rate of W1 and W6.
    pub lr: f64,
    /// W2's sample counts N.
    pub w2_ns: Vec<usize>,
    /// Samples of the finite-difference check's net.
    pub tiny_n: usize,
    /// Hidden width of the finite-difference check's net.
    pub tiny_d: usize,
    /// Its central-difference step ε.
    pub fd_eps: f64,
    /// W3's N.
    pub ps_n: usize,
    /// Eigenpairs of Σ₁ in W3 (and the rank of W6's noise when taken from W3).
    pub topk: usize,
    /// W4's N.
    pub lanczos_n: usize,
    /// W4's Lanczos steps m.
    pub lanczos_iters: usize,
    /// W4's eigenpairs k.
    pub lanczos_k: usize,
    /// W5's N.
    pub hutch_n: usize,
    /// W5's Rademacher probes P.
    pub hutch_probes: usize,
    /// Per-sample gradients per block in W5's exact Tr(HΣ₁).
    pub hvp_chunk: usize,
    /// W6's batch B.
    pub gld_batch: usize,
    /// W6's noise rank k.
    pub gld_k: usize,
    /// The HW matmul's n (n×n times n×n).
    pub matmul_n: usize,
    /// The HW copy's size, MiB.
    pub copy_mib: usize,
    /// Directions per R-op pass in the block-HVP rows.
    pub block: usize,
}

impl Sizes {
    fn new(quick: bool) -> Self {
        let base = Sizes {
            w1_configs: vec![(512, 128), (2048, 128), (2048, 1024), (8192, 1024)],
            w1_losses: vec!["mse", "ce"],
            w1_pool_batches: 8,
            lr: 0.1,
            w2_ns: vec![1000, 10000],
            tiny_n: 32,
            tiny_d: 16,
            fd_eps: 1e-6,
            ps_n: 1000,
            topk: 20,
            lanczos_n: 1000,
            lanczos_iters: 100,
            lanczos_k: 20,
            hutch_n: 1000,
            hutch_probes: 100,
            hvp_chunk: 200,
            gld_batch: 128,
            gld_k: 20,
            matmul_n: 8192,
            copy_mib: 1024,
            block: 20,
        };
        if !quick {
            return base;
        }
        Sizes {
            w1_configs: vec![(512, 128), (2048, 128)],
            w2_ns: vec![128, 512],
            ps_n: 128,
            lanczos_n: 256,
            lanczos_iters: 40,
            hutch_n: 128,
            hutch_probes: 20,
            hvp_chunk: 32,
            matmul_n: 1024,
            copy_mib: 128,
            ..base
        }
    }

    /// Samples in the shared data pool.
    fn pool(&self) -> usize {
        let w1 = self
            .w1_configs
            .iter()
            .map(|&(_, b)| b * self.w1_pool_batches)
            .max()
            .unwrap_or(0);
        let gld = self.gld_batch * self.w1_pool_batches;
        [10_000, w1, gld, self.ps_n, self.lanczos_n, self.hutch_n]
            .into_iter()
            .chain(self.w2_ns.iter().copied())
            .max()
            .unwrap_or(10_000)
    }
}

/// A row's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Timed and checked.
    Ok,
    /// Failed its check, or the backend failed.
    Error,
    /// Not run (time budget, or a size the device cannot hold).
    Skipped,
}

/// One benchmark row, in the anchor's layout.
#[derive(Debug, Clone)]
pub struct Row {
    /// "W1" … "W6", "HW", "CNN" (noisescope only: the convyu rows).
    pub workload: &'static str,
    /// What noisescope ran.
    pub name: String,
    /// The problem, with the anchor's keys.
    pub params: Map<String, Value>,
    /// The problem as the anchor writes it (the join key).
    pub params_str: String,
    /// The PyTorch rows' `params_str` this row answers (default: its own).
    pub anchor: Vec<String>,
    /// Per-call times, when timed.
    pub stats: Option<Stats>,
    /// Units per second and their name.
    pub throughput: Option<(f64, &'static str)>,
    /// Measured side values (estimates, work per call).
    pub extra: Map<String, Value>,
    /// The correctness checks' values.
    pub checks: Map<String, Value>,
    /// A line printed under the table.
    pub table_note: Option<String>,
    /// The outcome.
    pub status: Status,
    /// Why it failed or was skipped.
    pub error: Option<String>,
    /// The whole row (setup, checks, timing), s.
    pub wall_s: f64,
}

impl Row {
    fn new(workload: &'static str, name: &str, params: Value, params_str: &str) -> Self {
        Row {
            workload,
            name: name.into(),
            params: match params {
                Value::Object(m) => m,
                _ => Map::new(),
            },
            params_str: params_str.into(),
            anchor: vec![params_str.into()],
            stats: None,
            throughput: None,
            extra: Map::new(),
            checks: Map::new(),
            table_note: None,
            status: Status::Ok,
            error: None,
            wall_s: 0.0,
        }
    }

    /// Records a check value.
    pub fn check(&mut self, key: &str, value: impl Into<Value>) {
        self.checks.insert(key.into(), value.into());
    }

    /// Records an extra value.
    pub fn note(&mut self, key: &str, value: impl Into<Value>) {
        self.extra.insert(key.into(), value.into());
    }

    /// Work per call, for the floor: FLOPs and bytes moved (estimates, stated in `extra`).
    pub fn work(&mut self, flops: f64, bytes: f64) {
        self.note("approx_flops", flops);
        self.note("approx_bytes", bytes);
    }

    /// Sets the statistics and a throughput of `units` per call.
    pub fn timed(&mut self, stats: Stats, units: f64, unit: &'static str) {
        self.throughput = Some((units / (stats.median_ms / 1e3), unit));
        self.stats = Some(stats);
    }

    fn to_json(&self) -> Value {
        let mut o = Map::new();
        o.insert("workload".into(), json!(self.workload));
        o.insert("name".into(), json!(self.name));
        o.insert("params".into(), Value::Object(self.params.clone()));
        o.insert("params_str".into(), json!(self.params_str));
        o.insert("anchor".into(), json!(self.anchor));
        if let Some(Value::Object(m)) = self.stats.as_ref().map(|s| json!(s)) {
            o.extend(m);
        }
        if let Some((v, unit)) = self.throughput {
            o.insert("throughput".into(), json!({"value": v, "unit": unit}));
        }
        if !self.extra.is_empty() {
            o.insert("extra".into(), Value::Object(self.extra.clone()));
        }
        if !self.checks.is_empty() {
            o.insert("checks".into(), Value::Object(self.checks.clone()));
        }
        if let Some(n) = &self.table_note {
            o.insert("table_note".into(), json!(n));
        }
        o.insert("status".into(), json!(self.status));
        if let Some(e) = &self.error {
            o.insert("error".into(), json!(e));
        }
        o.insert("wall_s".into(), json!((self.wall_s * 1e3).round() / 1e3));
        Value::Object(o)
    }
}

/// Fails with `what` unless `ok`: a fast wrong answer must not pass as a result.
pub fn ensure(ok: bool, what: impl FnOnce() -> String) -> Result<()> {
    if ok {
        Ok(())
    } else {
        bail!("check failed: {}", what())
    }
}

/// The device a bench runs on, as the caller opened it.
pub struct Target {
    /// The device timed.
    pub device: Device,
    /// How to name it: `ndarray (CPU, N threads, matrix engine)` or the adapter's name.
    pub description: String,
    /// The backend's name as `--backend` spells it, for the document's `meta`.
    pub backend: String,
    /// A GPU through wgpu: buffers are capped (W3 skips what does not fit).
    pub gpu: bool,
    /// A CPU device where f64 is exact: the reference the device's products are held to.
    pub reference: Device,
}

/// What to run and where the rows go.
pub struct Options {
    /// The anchor's QUICK sizes and timing rules instead of FULL.
    pub quick: bool,
    /// The workloads, in [`WORKLOADS`]' order ([`selection`] makes the list).
    pub workloads: Vec<&'static str>,
    /// Seed of data, initializations and directions.
    pub seed: u64,
    /// Rows that would start after this many seconds are skipped.
    pub budget_s: Option<f64>,
    /// The JSON document, rewritten after every row.
    pub out: Option<PathBuf>,
}

/// What every workload reads: device, sizes, timing rules, seed and the shared data pool.
pub struct Ctx<'a> {
    /// The bench device.
    pub target: &'a Target,
    /// Problem sizes.
    pub sizes: Sizes,
    /// Repetition rules.
    pub timing: Timing,
    /// Seed of data, initializations and directions.
    pub seed: u64,
    /// The shared data pool (prefixes and batches of it are the workloads' data).
    pub pool: Features,
}

/// The rows so far and where they go.
pub struct Recorder {
    rows: Vec<Row>,
    meta: Value,
    out: Option<PathBuf>,
    start: Instant,
    budget_s: Option<f64>,
    bar: ProgressBar,
}

impl Recorder {
    /// Runs one row: `body` times and checks; an error (or a panic inside the backend) makes
    /// the row an error row and the bench goes on. The document is rewritten afterwards.
    pub fn row(
        &mut self,
        workload: &'static str,
        name: &str,
        params: Value,
        params_str: &str,
        body: impl FnOnce(&mut Row) -> Result<()>,
    ) -> Result<()> {
        if let Some(budget) = self
            .budget_s
            .filter(|&b| self.start.elapsed().as_secs_f64() > b)
        {
            self.skip(
                workload,
                name,
                params_str,
                &format!("time budget ({budget} s) used"),
            );
            return self.write(false);
        }
        self.bar
            .set_message(format!("{workload} {name} {params_str}"));
        let mut row = Row::new(workload, name, params, params_str);
        let s = Instant::now();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(&mut row)));
        row.wall_s = s.elapsed().as_secs_f64();
        let failure = match outcome {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(format!("{e:#}")),
            Err(p) => Some(
                p.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "panic".into()),
            ),
        };
        if let Some(e) = failure {
            row.status = Status::Error;
            row.error = Some(e.chars().take(800).collect());
            row.stats = None;
            row.throughput = None;
        }
        self.rows.push(row);
        self.bar.inc(1);
        self.write(false)
    }

    /// A row that did not run, with the reason.
    pub fn skip(&mut self, workload: &'static str, name: &str, params_str: &str, why: &str) {
        let mut row = Row::new(workload, name, json!({}), params_str);
        row.status = Status::Skipped;
        row.error = Some(why.into());
        self.rows.push(row);
    }

    /// The rows so far.
    pub fn rows(&self) -> &[Row] {
        &self.rows
    }

    /// Where the document is written, if anywhere.
    pub fn out(&self) -> Option<&std::path::Path> {
        self.out.as_deref()
    }

    /// Seconds since the bench started.
    pub fn elapsed_s(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    /// The error rows, each as `workload name params`.
    pub fn failed(&self) -> Vec<String> {
        self.rows
            .iter()
            .filter(|r| r.status == Status::Error)
            .map(|r| format!("{} {} {}", r.workload, r.name, r.params_str))
            .collect()
    }

    /// The JSON document: `meta`, `complete`, `elapsed_s` and the rows in the anchor's layout.
    pub fn document(&self, complete: bool) -> Value {
        json!({
            "meta": self.meta,
            "complete": complete,
            "elapsed_s": self.start.elapsed().as_secs_f64(),
            "rows": self.rows.iter().map(Row::to_json).collect::<Vec<_>>(),
        })
    }

    fn write(&self, complete: bool) -> Result<()> {
        let Some(path) = &self.out else {
            return Ok(());
        };
        let text = serde_json::to_string_pretty(&self.document(complete))
            .expect("a Value always serializes");
        noisescope_runs::rundir::write_atomic(path, text.as_bytes())
    }
}

/// The workloads of comma-separated `only` (all when absent) less those of `skip`, in
/// [`WORKLOADS`]' order; an unknown name is an error that lists the known ones.
pub fn selection(only: Option<&str>, skip: Option<&str>) -> Result<Vec<&'static str>> {
    let parse = |list: Option<&str>| -> Result<Option<BTreeSet<String>>> {
        let Some(list) = list else { return Ok(None) };
        let mut set = BTreeSet::new();
        for w in list.split(',').map(|w| w.trim().to_uppercase()) {
            if !WORKLOADS.contains(&w.as_str()) {
                bail!(
                    "unknown workload {w:?} in --only/--skip; the workloads are {}",
                    WORKLOADS.join(", ")
                );
            }
            set.insert(w);
        }
        Ok(Some(set))
    };
    let (only, skip) = (parse(only)?, parse(skip)?);
    Ok(WORKLOADS
        .into_iter()
        .filter(|w| only.as_ref().is_none_or(|s| s.contains(*w)))
        .filter(|w| skip.as_ref().is_none_or(|s| !s.contains(*w)))
        .collect())
}

/// Four significant digits, without scientific notation between 0.01 and 10⁷.
fn significant(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 || !(0.01..1e7).contains(&a) {
        return format!("{v:.3e}");
    }
    let decimals = (3 - a.log10().floor() as i32).max(0) as usize;
    format!("{v:.decimals$}")
}

/// The rows as a text table, one line per row, then the rows' notes.
pub fn table(rows: &[Row]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<4} {:<44} {:<46} {:>11} {:>11} {:>22}  status",
        "wl", "name", "params", "median ms", "first ms", "throughput"
    );
    for r in rows {
        let (med, first) = r
            .stats
            .as_ref()
            .map(|s| {
                (
                    format!("{:.3}", s.median_ms),
                    format!("{:.1}", s.first_call_ms),
                )
            })
            .unwrap_or_default();
        let tp = r
            .throughput
            .map(|(v, u)| format!("{} {u}", significant(v)))
            .unwrap_or_default();
        let status = match (&r.status, &r.error) {
            (Status::Ok, _) => "ok".to_string(),
            (s, Some(e)) => format!("{}: {e}", format!("{s:?}").to_lowercase()),
            (s, None) => format!("{s:?}").to_lowercase(),
        };
        let _ = writeln!(
            out,
            "{:<4} {:<44} {:<46} {:>11} {:>11} {:>22}  {status}",
            r.workload, r.name, r.params_str, med, first, tp
        );
    }
    for r in rows.iter().filter(|r| r.table_note.is_some()) {
        let _ = writeln!(
            out,
            "note: {} {} {}: {}",
            r.workload,
            r.name,
            r.params_str,
            r.table_note.as_deref().unwrap_or_default()
        );
    }
    out
}

/// Runs `options.workloads` on `target` in [`WORKLOADS`]' order, one row at a time: a row
/// whose check fails becomes an error row and the bench goes on. `bar` counts the rows.
///
/// # Returns
/// The rows and their document; the caller reports [`Recorder::failed`] rows.
pub fn run(target: &Target, options: &Options, bar: ProgressBar) -> Result<Recorder> {
    let sizes = Sizes::new(options.quick);
    let timing = if options.quick {
        Timing::quick()
    } else {
        Timing::full()
    };
    let pool = workloads::make_data(sizes.pool(), options.seed);
    let meta = json!({
        "tool": "noisescope bench",
        "argv": std::env::args().collect::<Vec<_>>(),
        "quick": options.quick,
        "started_unix": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0),
        "device": target.description,
        "device_name": target.description,
        "backend": target.backend,
        "versions": {"noisescope": env!("CARGO_PKG_VERSION"), "burn": "0.22.1"},
        "gpu_fusion": noisescope_data::GPU_FUSION,
        "autotune_level": std::env::var("CUBECL_AUTOTUNE_LEVEL").unwrap_or_else(|_| "balanced (default)".into()),
        "cpu_count": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "seed": options.seed,
        "budget_s": options.budget_s,
        "workloads": options.workloads,
        "config": sizes,
        "timing": timing,
        "conventions": {
            "data": "x standard normal [n, 784] (ChaCha8, not numpy's stream), labels uniform in 0..9; every workload uses prefixes of one pool",
            "init": "PyTorch nn.Linear default (kaiming-uniform weights and biases), seed + 1",
            "mse": "½‖f − y‖² per sample, mean over samples (the anchor's mean over N·10 entries is 1/5 of it; same FLOPs)",
            "ce": "softmax cross-entropy, mean over samples",
            "model_a": "tanh 784-2048-10 mse",
            "model_b": "relu 784-512-10 ce",
            "hvp": "Pearlmutter's R-operator over the flat θ, k directions per pass",
            "per_sample": "factored per-sample gradients (per layer: back-propagated δ_n and inputs a_n), never N×D unless a row says so",
            "floor": "approx_flops / matmul rate and approx_bytes / copy bandwidth of this device's HW rows",
        },
    });
    let ctx = Ctx {
        target,
        sizes,
        timing,
        seed: options.seed,
        pool,
    };
    let mut bench = Recorder {
        rows: Vec::new(),
        meta,
        out: options.out.clone(),
        start: Instant::now(),
        budget_s: options.budget_s,
        bar,
    };
    bench.write(false)?;
    // W3's top of Σ₁ per model: the factor of W6's low-rank noise.
    let mut factors = workloads::Factors::new();
    for w in &options.workloads {
        match *w {
            "W1" => workloads::w1(&ctx, &mut bench)?,
            "W2" => workloads::w2(&ctx, &mut bench)?,
            "W3" => workloads::w3(&ctx, &mut bench, &mut factors)?,
            "W4" => workloads::w4(&ctx, &mut bench)?,
            "W5" => workloads::w5(&ctx, &mut bench)?,
            "W6" => workloads::w6(&ctx, &mut bench, &factors)?,
            "HW" => workloads::hw(&ctx, &mut bench)?,
            "CNN" => workloads::cnn(&ctx, &mut bench)?,
            w => bail!(
                "unknown workload {w:?}; the workloads are {}",
                WORKLOADS.join(", ")
            ),
        }
    }
    bench.bar.finish_and_clear();
    bench.write(true)?;
    Ok(bench)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_keeps_run_order_and_names_unknown_workloads() {
        assert_eq!(selection(None, None).unwrap(), WORKLOADS.to_vec());
        assert_eq!(selection(Some("w6,W2"), None).unwrap(), vec!["W2", "W6"]);
        assert_eq!(
            selection(None, Some("W1,HW,W3")).unwrap(),
            vec!["W2", "W4", "W5", "W6", "CNN"]
        );
        assert_eq!(selection(Some("cnn"), None).unwrap(), vec!["CNN"]);
        let e = selection(Some("W7"), None).unwrap_err().to_string();
        assert!(e.contains("W7") && e.contains("HW, W1, W2"), "{e}");
    }

    #[test]
    fn throughputs_keep_four_digits() {
        assert_eq!(significant(1234.5678), "1235");
        assert_eq!(significant(12.345678), "12.35");
        assert_eq!(significant(0.012345), "0.01235");
        assert_eq!(significant(2.5e9), "2.500e9");
    }

    #[test]
    fn quick_sizes_are_the_anchors() {
        let q = Sizes::new(true);
        assert_eq!(q.w2_ns, vec![128, 512]);
        assert_eq!((q.lanczos_n, q.lanczos_iters), (256, 40));
        assert_eq!((q.hutch_n, q.hutch_probes, q.hvp_chunk), (128, 20, 32));
        let f = Sizes::new(false);
        assert_eq!(f.w1_configs.len(), 4);
        assert_eq!(f.pool(), 10_000);
    }
}
