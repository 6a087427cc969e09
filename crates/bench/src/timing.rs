//! The two timing rules of `../shared/bench/torch_anchor.py`, so that a noisescope row and a
//! PyTorch row mean the same thing.
//!
//! `per_call`: blocks of `inner` back-to-back calls with one device synchronization at the end
//! of each block (host launch overhead counts, no sync inside a block); `inner` is chosen so a
//! block lasts ≥ `min_block_s`, the number of blocks so a row lasts ≤ `max_row_s` (at least 3).
//! `whole_runs`: each run is one workload instance, synchronized on both sides. Both report
//! per-call milliseconds and the first call's time (kernel compilation and autotuning
//! included: the start-up latency a user waits for).
//!
//! A timed call returns what it computed ([`Held`]), and the harness holds it until the
//! block's synchronization. A lazy backend (burn's `fusion` on wgpu) skips work whose result
//! is dropped unread: `x * 1` dropped at once took 0.002 ms on lavapipe. Held results make
//! both builds time the same work; when they would pass [`HELD_BYTES`] the harness
//! synchronizes early, inside the timed block.

use std::time::Instant;

use anyhow::{Result, anyhow};
use burn::prelude::{Device, Tensor};
use serde::Serialize;

/// Repetition settings (the anchor's FULL or QUICK values).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Timing {
    /// Untimed calls before calibration (the first is timed separately as `first_call_ms`).
    pub warmup: usize,
    /// Blocks per row at most.
    pub reps: usize,
    /// A row's time budget, s.
    pub max_row_s: f64,
    /// A block's least duration, s.
    pub min_block_s: f64,
    /// Whole runs per long workload (Lanczos, traces).
    pub long_reps: usize,
}

impl Timing {
    /// The anchor's FULL settings.
    pub fn full() -> Self {
        Timing {
            warmup: 3,
            reps: 15,
            max_row_s: 1.5,
            min_block_s: 0.02,
            long_reps: 3,
        }
    }

    /// The anchor's QUICK settings.
    pub fn quick() -> Self {
        Timing {
            warmup: 1,
            reps: 5,
            max_row_s: 2.0,
            min_block_s: 0.02,
            long_reps: 2,
        }
    }
}

/// Per-call statistics of one row, in ms.
#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    /// Median per-call time.
    pub median_ms: f64,
    /// Fastest sample.
    pub min_ms: f64,
    /// Slowest sample.
    pub max_ms: f64,
    /// Mean of the samples.
    pub mean_ms: f64,
    /// 25th percentile (numpy's linear interpolation).
    pub p25_ms: f64,
    /// 75th percentile.
    pub p75_ms: f64,
    /// Timed blocks (or runs).
    pub n_samples: usize,
    /// The first 64 per-call samples.
    pub samples_ms: Vec<f64>,
    /// Calls per timed block.
    pub inner: usize,
    /// The very first call, synchronized: compilation and autotuning included.
    pub first_call_ms: f64,
}

/// The q-quantile of sorted `v` with linear interpolation (numpy's default).
fn quantile(v: &[f64], q: f64) -> f64 {
    let pos = q * (v.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
}

impl Stats {
    fn from_samples(mut samples: Vec<f64>, inner: usize, first_call_ms: f64) -> Self {
        let shown = samples.iter().take(64).copied().collect();
        samples.sort_by(f64::total_cmp);
        let n = samples.len();
        Stats {
            median_ms: quantile(&samples, 0.5),
            min_ms: samples[0],
            max_ms: samples[n - 1],
            mean_ms: samples.iter().sum::<f64>() / n as f64,
            p25_ms: quantile(&samples, 0.25),
            p75_ms: quantile(&samples, 0.75),
            n_samples: n,
            samples_ms: shown,
            inner,
            first_call_ms,
        }
    }

    /// The same statistics for `per` units per call (a block of k directions timed as k
    /// per-direction calls).
    pub fn per_unit(mut self, per: usize) -> Self {
        let s = per as f64;
        for v in [
            &mut self.median_ms,
            &mut self.min_ms,
            &mut self.max_ms,
            &mut self.mean_ms,
            &mut self.p25_ms,
            &mut self.p75_ms,
        ] {
            *v /= s;
        }
        self.samples_ms.iter_mut().for_each(|v| *v /= s);
        self
    }
}

/// The most bytes of results a block holds before it synchronizes early (well inside an H100's
/// memory, and a few of lavapipe's 128 MiB buffers).
pub const HELD_BYTES: usize = 1 << 30;

/// A timed call's result, held until the device has computed it.
pub trait Held {
    /// Device bytes it occupies (an estimate is enough: it only paces early synchronizations).
    fn bytes(&self) -> usize;
}

impl Held for () {
    fn bytes(&self) -> usize {
        0
    }
}

impl<const D: usize> Held for Tensor<D> {
    fn bytes(&self) -> usize {
        self.shape().num_elements() * self.dtype().size()
    }
}

impl<A: Held, B: Held> Held for (A, B) {
    fn bytes(&self) -> usize {
        self.0.bytes() + self.1.bytes()
    }
}

impl Held for noisescope_models::SampleGradients {
    /// The per-layer factors (activations and output gradients), N × (inputs + outputs) per
    /// layer: small beside the D-wide matrix they stand for.
    fn bytes(&self) -> usize {
        0
    }
}

/// Runs `f` and holds its result until the next synchronization.
struct Holder<'a, T> {
    device: &'a Device,
    held: Vec<T>,
    bytes: usize,
}

impl<'a, T: Held> Holder<'a, T> {
    fn new(device: &'a Device) -> Self {
        Holder {
            device,
            held: Vec::new(),
            bytes: 0,
        }
    }

    fn call(&mut self, f: &mut impl FnMut() -> T) -> Result<()> {
        let out = f();
        self.bytes += out.bytes();
        self.held.push(out);
        if self.bytes > HELD_BYTES {
            self.sync()?;
        }
        Ok(())
    }

    /// Synchronizes, then lets the results go.
    fn sync(&mut self) -> Result<()> {
        sync(self.device)?;
        self.held.clear();
        self.bytes = 0;
        Ok(())
    }
}

fn sync(device: &Device) -> Result<()> {
    device
        .sync()
        .map_err(|e| anyhow!("the device failed while executing: {e:?}"))
}

fn ms(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1e3
}

/// Times `f` in blocks with one synchronization per block (see the module doc); each call's
/// result is held until then.
pub fn per_call<T: Held>(device: &Device, t: &Timing, mut f: impl FnMut() -> T) -> Result<Stats> {
    let mut h = Holder::new(device);
    let s = Instant::now();
    h.call(&mut f)?;
    h.sync()?;
    let first = ms(s);
    for _ in 1..t.warmup {
        h.call(&mut f)?;
    }
    h.sync()?;
    let s = Instant::now();
    h.call(&mut f)?;
    h.sync()?;
    let one = ms(s).max(1e-4) / 1e3;
    let inner = ((t.min_block_s / one).ceil() as usize).clamp(1, 10_000);
    let block = one * inner as f64;
    let reps = ((t.max_row_s / block).floor() as usize).min(t.reps).max(3);
    let mut samples = Vec::with_capacity(reps);
    for _ in 0..reps {
        let s = Instant::now();
        for _ in 0..inner {
            h.call(&mut f)?;
        }
        h.sync()?;
        samples.push(ms(s) / inner as f64);
    }
    Ok(Stats::from_samples(samples, inner, first))
}

/// Times whole runs of `f`: one warm-up run (reported as `first_call_ms`), then
/// `t.long_reps` runs, each synchronized on both sides, its result held until then.
pub fn whole_runs<T: Held>(device: &Device, t: &Timing, mut f: impl FnMut() -> T) -> Result<Stats> {
    let mut h = Holder::new(device);
    let s = Instant::now();
    h.call(&mut f)?;
    h.sync()?;
    let first = ms(s);
    let mut samples = Vec::with_capacity(t.long_reps);
    for _ in 0..t.long_reps.max(1) {
        h.sync()?;
        let s = Instant::now();
        h.call(&mut f)?;
        h.sync()?;
        samples.push(ms(s));
    }
    Ok(Stats::from_samples(samples, 1, first))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_match_numpy() {
        // numpy.percentile([1, 2, 3, 4], [25, 50, 75]) = [1.75, 2.5, 3.25].
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile(&v, 0.25), 1.75);
        assert_eq!(quantile(&v, 0.5), 2.5);
        assert_eq!(quantile(&v, 0.75), 3.25);
        assert_eq!(quantile(&[7.0], 0.5), 7.0);
    }

    #[test]
    fn per_unit_divides_every_statistic() {
        let s = Stats::from_samples(vec![4.0, 2.0, 6.0], 1, 10.0).per_unit(2);
        assert_eq!(s.median_ms, 2.0);
        assert_eq!((s.min_ms, s.max_ms), (1.0, 3.0));
        assert_eq!(s.samples_ms, vec![2.0, 1.0, 3.0]);
        assert_eq!(s.first_call_ms, 10.0, "start-up latency is not per unit");
    }
}
