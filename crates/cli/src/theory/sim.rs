//! What every theory experiment's simulation shares: its settings, the run of K chains to
//! stationarity with a progress bar, and per-group means with standard errors taken across
//! independent chains (so autocorrelation within a chain needs no correction).

use burn::prelude::*;
use indicatif::ProgressBar;
use noisescope_data::Precision;
use noisescope_data::transfer::{to_device, to_host};
use noisescope_noise::{ChainData, LinearChains};
use serde::{Deserialize, Serialize};

/// How long and how wide to simulate.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Simulation {
    /// Independent chains per setting.
    pub chains: usize,
    /// Steps discarded before measuring.
    pub burn_in: usize,
    /// Steps measured.
    pub steps: usize,
    /// Steps summed on the device between reads to the host (f32 sums stay short).
    #[serde(default = "default_block")]
    pub block: usize,
    /// Seeds the device's random numbers.
    #[serde(default)]
    pub seed: u64,
    /// Element type on the device.
    #[serde(default)]
    pub precision: Precision,
}

fn default_block() -> usize {
    500
}

/// A step-count progress bar labelled `label`.
pub fn bar(quiet: bool, total: usize, label: &str) -> ProgressBar {
    crate::output::steps_bar(quiet, total as u64, 0, 28, label)
}

/// Per-chain time averages over the measured steps: Σ̂_k = (1/T) Σ_t e_t e_tᵀ ([K·D·D]),
/// the same for the gradient noise when known, and which chains stayed finite.
pub struct Moments {
    pub dim: usize,
    pub ee: Vec<f64>,
    pub noise: Option<Vec<f64>>,
    pub finite: Vec<bool>,
    /// Per chain, Tr of the first and of the last block's average e eᵀ: a stationary chain
    /// keeps them comparable, a diverging one grows by orders of magnitude.
    pub first_block: Vec<f64>,
    pub last_block: Vec<f64>,
}

impl Moments {
    /// Entry (i, j) of chain k's Σ̂.
    pub fn sigma(&self, k: usize, i: usize, j: usize) -> f64 {
        self.ee[(k * self.dim + i) * self.dim + j]
    }

    /// Entry (i, j) of chain k's Ĉ.
    pub fn noise(&self, k: usize, i: usize, j: usize) -> Option<f64> {
        self.noise
            .as_ref()
            .map(|c| c[(k * self.dim + i) * self.dim + j])
    }
}

/// Burns in, then sums e e^T (and ξ ξ^T) over `sim.steps` steps in blocks.
pub fn stationary_moments(
    chains: &mut LinearChains,
    center: &Tensor<1>,
    sim: &Simulation,
    quiet: bool,
    label: &str,
) -> Moments {
    let [k, d] = chains.w().dims();
    let b = bar(quiet, sim.burn_in + sim.steps, label);
    for _ in 0..sim.burn_in {
        chains.step();
        b.inc(1);
    }
    let mut ee = vec![0.0; k * d * d];
    let mut noise: Option<Vec<f64>> = None;
    let (mut first_block, mut last_block) = (Vec::new(), Vec::new());
    let mut left = sim.steps;
    while left > 0 {
        let n = left.min(sim.block.max(1));
        let sums = chains.run(n, center);
        let block = to_host(sums.ee);
        let traces: Vec<f64> = (0..k)
            .map(|c| (0..d).map(|i| block[(c * d + i) * d + i]).sum::<f64>() / n as f64)
            .collect();
        if first_block.is_empty() {
            first_block = traces.clone();
        }
        last_block = traces;
        for (a, v) in ee.iter_mut().zip(block) {
            *a += v;
        }
        if let Some(c) = sums.noise {
            let acc = noise.get_or_insert_with(|| vec![0.0; k * d * d]);
            for (a, v) in acc.iter_mut().zip(to_host(c)) {
                *a += v;
            }
        }
        left -= n;
        b.inc(n as u64);
    }
    b.finish_and_clear();
    let t = sim.steps.max(1) as f64;
    ee.iter_mut().for_each(|v| *v /= t);
    if let Some(c) = noise.as_mut() {
        c.iter_mut().for_each(|v| *v /= t);
    }
    let finite = (0..k)
        .map(|c| ee[c * d * d..(c + 1) * d * d].iter().all(|v| v.is_finite()))
        .collect();
    Moments {
        dim: d,
        ee,
        noise,
        finite,
        first_block,
        last_block,
    }
}

impl Moments {
    /// Whether chains `range` look stationary: the median over chains of the last block's
    /// Tr e eᵀ is within a factor `limit` of the first block's (medians, because a heavy tail
    /// makes single chains jump). Finite but exploding chains fail this.
    pub fn settled(&self, range: std::ops::Range<usize>, limit: f64) -> bool {
        let median = |v: &[f64]| {
            let mut x: Vec<f64> = v[range.clone()].to_vec();
            x.sort_by(|a, b| a.total_cmp(b));
            x.get(x.len() / 2).copied().unwrap_or(f64::NAN)
        };
        let (a, b) = (median(&self.first_block), median(&self.last_block));
        b.is_finite() && (b <= limit * a.max(f64::MIN_POSITIVE) || b < 1e-30)
    }
}

/// Mean and standard error of independent values; `None` when any is not finite (a
/// diverged chain) or there are fewer than two.
pub fn mean_se(values: &[f64]) -> Option<(f64, f64)> {
    if values.iter().any(|v| !v.is_finite()) {
        return None;
    }
    match noisescope_probe::stats::mean_and_se(values) {
        (m, Some(se)) => Some((m, se)),
        _ => None,
    }
}

/// Chains of 1-d SGD on fresh Gaussian data (curvature a, teacher u, label noise σ), one per
/// entry of `lr` and `weight_decay`, all from w = 0.
pub fn one_d_chains(
    (a, u, label_std): (f64, f64, f64),
    batch: usize,
    lr: &[f64],
    weight_decay: &[f64],
    device: &Device,
    precision: Precision,
) -> LinearChains {
    let data = ChainData::Gaussian {
        a_sqrt: vector(&[a.sqrt()], device, precision),
        teacher: vector(&[u], device, precision),
        label_std,
    };
    LinearChains::new(
        data,
        batch,
        0.0,
        lr,
        weight_decay,
        Tensor::zeros([lr.len(), 1], (device, precision.dtype())),
    )
}

/// `values`, each repeated `k` times: the per-chain settings of k chains per value.
pub fn repeat_each(values: &[f64], k: usize) -> Vec<f64> {
    values
        .iter()
        .flat_map(|&v| std::iter::repeat_n(v, k))
        .collect()
}

/// A device vector.
pub fn vector(values: &[f64], device: &Device, precision: Precision) -> Tensor<1> {
    let n = values.len();
    to_device(values.to_vec(), 1, n, device, precision.dtype()).reshape([n])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_standard_error() {
        let (m, se) = mean_se(&[1.0, 2.0, 3.0, 4.0]).unwrap();
        assert_eq!(m, 2.5);
        assert!((se - (5.0f64 / 3.0 / 4.0).sqrt()).abs() < 1e-15);
        assert!(mean_se(&[1.0, f64::INFINITY]).is_none());
        assert!(mean_se(&[1.0]).is_none());
    }
}
