//! Seeded minibatch index samplers whose state can be saved and restored, so that a resumed
//! run draws the same batches.
//!
//! - `with-replacement`: m i.i.d. uniform indices; the minibatch gradient has covariance
//!   Σ₁/m.
//! - `without-replacement`: each batch an independent uniform m-subset; covariance
//!   Σ₁ (N − m) / (m (N − 1)).
//! - `shuffle`: consecutive batches of a fresh permutation each epoch (the usual SGD loader);
//!   each batch is marginally an m-subset as above, but batches of one epoch are dependent. A
//!   last partial batch is dropped.

use rand::seq::SliceRandom;
use rand::seq::index::sample;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::{DataError, Result};

/// How batches are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Sampling {
    /// i.i.d. uniform indices.
    WithReplacement,
    /// An independent uniform subset per batch.
    WithoutReplacement,
    /// Epochs over a fresh random permutation.
    Shuffle,
}

/// Everything needed to continue a sampler exactly where it stopped.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SamplerState {
    /// Seed of the stream.
    pub seed: u64,
    /// Position in the ChaCha8 stream (in 32-bit words).
    pub word_pos: u128,
    /// Current permutation (shuffle mode only).
    pub perm: Vec<usize>,
    /// Next position in `perm`.
    pub pos: usize,
    /// Completed epochs (shuffle mode).
    pub epoch: u64,
}

/// Draws minibatches of `batch` indices from `0..n`.
#[derive(Debug, Clone)]
pub struct MinibatchSampler {
    n: usize,
    batch: usize,
    mode: Sampling,
    seed: u64,
    rng: ChaCha8Rng,
    perm: Vec<usize>,
    pos: usize,
    epoch: u64,
}

impl MinibatchSampler {
    /// A sampler over n samples.
    ///
    /// # Errors
    /// [`DataError::Invalid`] when the batch is empty or larger than n.
    pub fn new(n: usize, batch: usize, mode: Sampling, seed: u64) -> Result<Self> {
        if batch == 0 || batch > n {
            return Err(DataError::invalid(
                "batch size",
                format!("{batch} for a dataset of {n} samples (need 1 ≤ batch ≤ n)"),
            ));
        }
        Ok(MinibatchSampler {
            n,
            batch,
            mode,
            seed,
            rng: ChaCha8Rng::seed_from_u64(seed),
            perm: Vec::new(),
            pos: 0,
            epoch: 0,
        })
    }

    /// The next batch of indices.
    pub fn next_batch(&mut self) -> Vec<usize> {
        match self.mode {
            Sampling::WithReplacement => (0..self.batch)
                .map(|_| self.rng.random_range(0..self.n))
                .collect(),
            Sampling::WithoutReplacement => sample(&mut self.rng, self.n, self.batch).into_vec(),
            Sampling::Shuffle => {
                if self.perm.is_empty() || self.pos + self.batch > self.n {
                    if !self.perm.is_empty() {
                        self.epoch += 1;
                    }
                    self.perm = (0..self.n).collect();
                    self.perm.shuffle(&mut self.rng);
                    self.pos = 0;
                }
                let b = self.perm[self.pos..self.pos + self.batch].to_vec();
                self.pos += self.batch;
                b
            }
        }
    }

    /// Completed epochs in shuffle mode.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The state to save in a checkpoint.
    pub fn state(&self) -> SamplerState {
        SamplerState {
            seed: self.seed,
            word_pos: self.rng.get_word_pos(),
            perm: self.perm.clone(),
            pos: self.pos,
            epoch: self.epoch,
        }
    }

    /// A sampler continuing from `state`.
    pub fn restore(n: usize, batch: usize, mode: Sampling, state: &SamplerState) -> Result<Self> {
        let mut s = Self::new(n, batch, mode, state.seed)?;
        if !state.perm.is_empty() && state.perm.len() != n {
            return Err(DataError::invalid(
                "sampler state",
                format!("permutation of {} for a dataset of {n}", state.perm.len()),
            ));
        }
        s.rng.set_word_pos(state.word_pos);
        s.perm = state.perm.clone();
        s.pos = state.pos;
        s.epoch = state.epoch;
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_draw_valid_batches() {
        for mode in [
            Sampling::WithReplacement,
            Sampling::WithoutReplacement,
            Sampling::Shuffle,
        ] {
            let mut s = MinibatchSampler::new(10, 4, mode, 1).unwrap();
            for _ in 0..20 {
                let b = s.next_batch();
                assert_eq!(b.len(), 4);
                assert!(b.iter().all(|&i| i < 10));
                if mode != Sampling::WithReplacement {
                    let mut u = b.clone();
                    u.sort();
                    u.dedup();
                    assert_eq!(u.len(), 4, "{mode:?} repeated an index");
                }
            }
        }
    }

    #[test]
    fn shuffle_covers_each_epoch_once() {
        let mut s = MinibatchSampler::new(12, 4, Sampling::Shuffle, 3).unwrap();
        let mut seen: Vec<usize> = (0..3).flat_map(|_| s.next_batch()).collect();
        seen.sort();
        assert_eq!(seen, (0..12).collect::<Vec<_>>());
        assert_eq!(s.epoch(), 0);
        s.next_batch();
        assert_eq!(s.epoch(), 1);
    }

    #[test]
    fn with_replacement_inclusion_frequency() {
        // Each index appears with probability 1/n per draw: 40 000 draws over n = 8.
        let mut s = MinibatchSampler::new(8, 4, Sampling::WithReplacement, 5).unwrap();
        let mut c = [0usize; 8];
        for _ in 0..10_000 {
            for i in s.next_batch() {
                c[i] += 1;
            }
        }
        let sd = (40_000.0f64 / 8.0 * 7.0 / 8.0).sqrt();
        assert!(
            c.iter().all(|&x| (x as f64 - 5000.0).abs() < 5.0 * sd),
            "{c:?}"
        );
    }

    #[test]
    fn restored_sampler_continues_identically() {
        for mode in [
            Sampling::WithReplacement,
            Sampling::WithoutReplacement,
            Sampling::Shuffle,
        ] {
            let mut a = MinibatchSampler::new(50, 7, mode, 11).unwrap();
            for _ in 0..13 {
                a.next_batch();
            }
            let st = a.state();
            let mut b = MinibatchSampler::restore(50, 7, mode, &st).unwrap();
            for _ in 0..30 {
                assert_eq!(a.next_batch(), b.next_batch(), "{mode:?}");
            }
        }
    }

    #[test]
    fn bad_batch_sizes() {
        assert!(MinibatchSampler::new(5, 0, Sampling::Shuffle, 0).is_err());
        let e = MinibatchSampler::new(5, 6, Sampling::Shuffle, 0).unwrap_err();
        assert!(e.to_string().contains("batch"), "{e}");
    }
}
