//! What every theory experiment's simulation shares: its settings, the run of K chains to
//! stationarity with a progress bar, and per-group means with standard errors taken across
//! independent chains (so autocorrelation within a chain needs no correction).

use burn::prelude::*;
use indicatif::ProgressBar;
use noisescope_data::Precision;
use noisescope_noise::LinearChains;
pub use noisescope_noise::Moments;
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

impl Simulation {
    /// Two chains at least (a standard error across them), one measured step, one step per
    /// block.
    pub fn check(&self) -> anyhow::Result<()> {
        super::at_least("simulation.chains", self.chains, 2)?;
        super::at_least("simulation.steps", self.steps, 1)?;
        super::at_least("simulation.block", self.block, 1)
    }
}

/// A step-count progress bar labelled `label`.
pub fn bar(quiet: bool, total: usize, label: &str) -> ProgressBar {
    crate::output::steps_bar(quiet, total as u64, 0, 28, label)
}

/// Burns in, then sums e eᵀ (and ξ ξᵀ) over `sim.steps` steps in blocks
/// ([`LinearChains::stationary_moments`]), with a progress bar labelled `label`.
pub fn stationary_moments(
    chains: &mut LinearChains,
    center: &Tensor<1>,
    sim: &Simulation,
    quiet: bool,
    label: &str,
) -> Moments {
    let b = bar(quiet, sim.burn_in + sim.steps, label);
    let m = chains.stationary_moments(center, sim.burn_in, sim.steps, sim.block, |n| b.inc(n));
    b.finish_and_clear();
    m
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

/// `values`, each repeated `k` times: the per-chain settings of k chains per value.
pub fn repeat_each(values: &[f64], k: usize) -> Vec<f64> {
    values
        .iter()
        .flat_map(|&v| std::iter::repeat_n(v, k))
        .collect()
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
