//! Many independent SGD chains on linear regression at once (Ziyin et al.'s setting, SPEC §4):
//! ℓ = ½(wᵀx − y)² + ½γ‖w‖², heavy-ball momentum μ, batch S. The K chains are the rows of
//! one [K, D] tensor and step together, each with its own learning rate λ_k and weight decay
//! γ_k, so that a sweep over λ or γ and its repetitions are a single device computation and
//! stationary statistics come from tensor reductions instead of host loops.

use burn::prelude::*;
use burn::tensor::{DType, Distribution};
use noisescope_data::transfer::{to_host, vector};

/// Where each step's minibatch comes from.
#[derive(Debug, Clone)]
pub enum ChainData {
    /// Fresh samples every step (the N → ∞ limit of Ziyin et al.'s label-noise setting):
    /// x ~ N(0, diag(a)), y = uᵀx + σε. Gaussian SGD is rotation-equivariant, so a diagonal A
    /// loses nothing: Σ in A's eigenbasis is the rotated Σ.
    Gaussian {
        /// √a, the square roots of A's eigenvalues, [D].
        a_sqrt: Tensor<1>,
        /// The teacher u, [D].
        teacher: Tensor<1>,
        /// σ, the label noise's standard deviation.
        label_std: f64,
    },
    /// Fixed training sets of equal size n, stacked: `sets` sets of n = N/sets rows each.
    /// Chain k trains on set ⌊k·sets/K⌋ and draws its own batch of S indices from it, with
    /// replacement.
    Finite {
        /// Inputs, [N, D].
        x: Tensor<2>,
        /// Targets, [N, 1].
        y: Tensor<2>,
        /// How many training sets are stacked in `x` and `y`.
        sets: usize,
    },
}

/// K SGD chains: w_k ← w_k − λ_k m_k with m_k ← μ m_k + ĝ_k and
/// ĝ_k = (1/S) Σ_{i∈B_k} x_i (x_iᵀ w_k − y_i) + γ_k w_k.
#[derive(Debug, Clone)]
pub struct LinearChains {
    data: ChainData,
    batch: usize,
    momentum: f64,
    lr: Tensor<2>,
    weight_decay: Tensor<2>,
    w: Tensor<2>,
    m: Option<Tensor<2>>,
    /// For stacked training sets: the first row of each chain's set, per batch entry, [K·S].
    offsets: Option<Tensor<1, Int>>,
    dtype: DType,
}

/// Sums over a block of steps, on the device: Σ_t e_t and Σ_t e_t e_tᵀ for e_t = w_t − w_ref,
/// and (fresh Gaussian data only) Σ_t ξ_t ξ_tᵀ for the gradient noise ξ_t = ĝ_t − ∇L(w_t).
#[derive(Debug, Clone)]
pub struct BlockSums {
    /// Steps summed.
    pub steps: usize,
    /// Σ_t e_t, [K, D].
    pub e: Tensor<2>,
    /// Σ_t e_t e_tᵀ, [K, D, D].
    pub ee: Tensor<3>,
    /// Σ_t ξ_t ξ_tᵀ, [K, D, D], when the population gradient is known.
    pub noise: Option<Tensor<3>>,
}

impl LinearChains {
    /// One-dimensional SGD on fresh Gaussian data x ~ N(0, a), y = u x + ε with ε ~ N(0, σ²),
    /// one chain per entry of `lr` and `weight_decay`, all from w = 0, without momentum.
    ///
    /// # Shapes
    /// K = `lr.len()` = `weight_decay.len()` chains of D = 1.
    pub fn one_d(
        (a, u, label_std): (f64, f64, f64),
        batch: usize,
        lr: &[f64],
        weight_decay: &[f64],
        device: &Device,
        dtype: DType,
    ) -> Self {
        let data = ChainData::Gaussian {
            a_sqrt: vector(&[a.sqrt()], device, dtype),
            teacher: vector(&[u], device, dtype),
            label_std,
        };
        LinearChains::new(
            data,
            batch,
            0.0,
            lr,
            weight_decay,
            Tensor::zeros([lr.len(), 1], (device, dtype)),
        )
    }

    /// K = `lr.len()` chains from `w0` ([K, D]), with per-chain λ_k and γ_k.
    ///
    /// # Shapes
    /// `w0`: [K, D] (K = `lr.len()` = `weight_decay.len()`); Gaussian data holds `a_sqrt` and
    /// `teacher` [D], finite data `x` [N, D] and `y` [N, 1] (`sets` blocks of N / `sets` rows).
    pub fn new(
        data: ChainData,
        batch: usize,
        momentum: f64,
        lr: &[f64],
        weight_decay: &[f64],
        w0: Tensor<2>,
    ) -> Self {
        let [k, _] = w0.dims();
        assert_eq!(lr.len(), k, "one learning rate per chain");
        assert_eq!(weight_decay.len(), k, "one weight decay per chain");
        let device = w0.device();
        let dtype = w0.dtype();
        let column = |v: &[f64]| {
            Tensor::<2>::from_data(TensorData::new(v.to_vec(), [k, 1]), (&device, dtype))
        };
        let offsets = match &data {
            ChainData::Finite { x, sets, .. } => {
                let n = x.dims()[0] / sets.max(&1);
                let v: Vec<i64> = (0..k)
                    .flat_map(|c| std::iter::repeat_n(((c * sets / k) * n) as i64, batch))
                    .collect();
                Some(Tensor::<1, Int>::from_data(
                    TensorData::new(v, [k * batch]),
                    &device,
                ))
            }
            ChainData::Gaussian { .. } => None,
        };
        LinearChains {
            data,
            batch,
            momentum,
            lr: column(lr),
            weight_decay: column(weight_decay),
            w: w0,
            m: None,
            offsets,
            dtype,
        }
    }

    /// The chains' parameters, [K, D].
    ///
    /// # Shapes
    /// Returns [K, D].
    pub fn w(&self) -> &Tensor<2> {
        &self.w
    }

    /// One step of every chain; returns the gradient noise ĝ − ∇L(w) when the population
    /// gradient A(w − u) + γw is known (fresh Gaussian data).
    ///
    /// # Shapes
    /// Returns ĝ − ∇L(w) as [K, D] (without the γ w term, common to both), `None` for finite
    /// data.
    pub fn step(&mut self) -> Option<Tensor<2>> {
        let [k, d] = self.w.dims();
        let s = self.batch;
        let device = self.w.device();
        let opts = (&device, self.dtype);
        let (x, y, population) = match &self.data {
            ChainData::Gaussian {
                a_sqrt,
                teacher,
                label_std,
            } => {
                let x = Tensor::<3>::random([k, s, d], Distribution::Normal(0.0, 1.0), opts)
                    * a_sqrt.clone().reshape([1, 1, d]);
                let eps = Tensor::<3>::random([k, s, 1], Distribution::Normal(0.0, 1.0), opts);
                let y =
                    (x.clone() * teacher.clone().reshape([1, 1, d])).sum_dim(2) + eps * *label_std;
                // ∇L(w) = A(w − u) for the population loss.
                let a = a_sqrt.clone().powi_scalar(2).reshape([1, d]);
                let grad = (self.w.clone() - teacher.clone().reshape([1, d])) * a;
                (x, y, Some(grad))
            }
            ChainData::Finite { x, y, sets } => {
                let n = x.dims()[0] / (*sets).max(1);
                let idx = Tensor::<1>::random([k * s], Distribution::Uniform(0.0, 1.0), opts)
                    .mul_scalar(n as f64)
                    .floor()
                    .int()
                    .clamp(0, n as i64 - 1)
                    + self.offsets.clone().expect("finite data has offsets");
                let xb = x.clone().select(0, idx.clone()).reshape([k, s, d]);
                let yb = y.clone().select(0, idx).reshape([k, s, 1]);
                (xb, yb, None)
            }
        };
        let residual = (x.clone() * self.w.clone().unsqueeze_dim::<3>(1)).sum_dim(2) - y;
        let data_grad = (x * residual).mean_dim(1).reshape([k, d]);
        let decay = self.w.clone() * self.weight_decay.clone();
        let noise = population.map(|p| data_grad.clone() - p);
        let g = data_grad + decay;
        let m = match self.m.take() {
            Some(m) if self.momentum != 0.0 => m * self.momentum + g,
            _ => g,
        };
        self.w = self.w.clone() - m.clone() * self.lr.clone();
        if self.momentum != 0.0 {
            self.m = Some(m);
        }
        noise
    }

    /// `steps` steps, summing e_t = w_t − `center` ([D]) after each step, its outer products
    /// and, when known, those of the gradient noise.
    ///
    /// # Shapes
    /// `center`: [D].
    ///
    /// # Returns
    /// [`BlockSums`] of the `steps` steps: Σ_t e_t [K, D], Σ_t e_t e_tᵀ [K, D, D] and, for fresh
    /// Gaussian data, Σ_t ξ_t ξ_tᵀ [K, D, D].
    pub fn run(&mut self, steps: usize, center: &Tensor<1>) -> BlockSums {
        let [k, d] = self.w.dims();
        let device = self.w.device();
        let opts = (&device, self.dtype);
        let c = center.clone().reshape([1, d]);
        let mut e_sum = Tensor::<2>::zeros([k, d], opts);
        let mut ee = Tensor::<3>::zeros([k, d, d], opts);
        let mut noise_sum: Option<Tensor<3>> = None;
        for _ in 0..steps {
            let xi = self.step();
            let e = self.w.clone() - c.clone();
            e_sum = e_sum + e.clone();
            ee = ee + e.clone().unsqueeze_dim::<3>(2) * e.unsqueeze_dim::<3>(1);
            if let Some(xi) = xi {
                let outer = xi.clone().unsqueeze_dim::<3>(2) * xi.unsqueeze_dim::<3>(1);
                noise_sum = Some(match noise_sum {
                    Some(s) => s + outer,
                    None => outer,
                });
            }
        }
        BlockSums {
            steps,
            e: e_sum,
            ee,
            noise: noise_sum,
        }
    }
}

/// Per-chain time averages over the measured steps: Σ̂_k = (1/T) Σ_t e_t e_tᵀ ([K·D·D]),
/// the same for the gradient noise when known, and which chains stayed finite.
pub struct Moments {
    /// D, the chains' dimension.
    pub dim: usize,
    /// Σ̂ of every chain, [K·D·D] row-major.
    pub ee: Vec<f64>,
    /// Ĉ of every chain, when the chains know their gradient noise.
    pub noise: Option<Vec<f64>>,
    /// Which chains stayed finite.
    pub finite: Vec<bool>,
    /// Per chain, Tr of the first and of the last block's average e eᵀ: a stationary chain
    /// keeps them comparable, a diverging one grows by orders of magnitude.
    pub first_block: Vec<f64>,
    /// The same for the last block.
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

impl LinearChains {
    /// Burns in `burn_in` steps, then averages e eᵀ (and ξ ξᵀ, when the chains know their
    /// gradient noise) over `steps` steps, run in blocks of `block`; `progress(n)` is told of
    /// every n steps done.
    ///
    /// # Returns
    /// Per chain k, Σ̂_k = (1/T) Σ_t e_t e_tᵀ with e_t = w_t − `center` ([K·D·D], row-major),
    /// and Ĉ_k the same for ξ.
    pub fn stationary_moments(
        &mut self,
        center: &Tensor<1>,
        burn_in: usize,
        steps: usize,
        block: usize,
        mut progress: impl FnMut(u64),
    ) -> Moments {
        let [k, d] = self.w().dims();
        for _ in 0..burn_in {
            self.step();
            progress(1);
        }
        let mut ee = vec![0.0; k * d * d];
        let mut noise: Option<Vec<f64>> = None;
        let (mut first_block, mut last_block) = (Vec::new(), Vec::new());
        let mut left = steps;
        while left > 0 {
            let n = left.min(block.max(1));
            let sums = self.run(n, center);
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
            progress(n as u64);
        }
        let t = steps.max(1) as f64;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(deprecated)] // ndarray: the project's f64 reference backend (see tests.rs)
    fn cpu() -> Device {
        Device::ndarray()
    }

    fn host<const R: usize>(t: Tensor<R>) -> Vec<f64> {
        t.into_data()
            .convert::<f64>()
            .try_into_vec::<f64>()
            .unwrap()
    }

    /// One step of every chain equals the update written out by hand for the same batch: the
    /// finite-data path with N = 1 has only one possible batch.
    #[test]
    fn one_step_matches_the_formula() {
        let device = cpu();
        let opts = (&device, DType::F64);
        let x = Tensor::<2>::from_data(TensorData::new(vec![1.0, 2.0], [1, 2]), opts);
        let y = Tensor::<2>::from_data(TensorData::new(vec![0.5], [1, 1]), opts);
        let w0 = Tensor::<2>::from_data(TensorData::new(vec![0.1, -0.2, 0.3, 0.4], [2, 2]), opts);
        let mut chains = LinearChains::new(
            ChainData::Finite { x, y, sets: 1 },
            3,
            0.0,
            &[0.1, 0.2],
            &[0.0, -0.5],
            w0,
        );
        chains.step();
        let got = host(chains.w().clone());
        // chain 0: r = 0.1 − 0.4 − 0.5 = −0.8, g = (−0.8, −1.6), w − 0.1 g.
        // chain 1: r = 0.3 + 0.8 − 0.5 = 0.6, g = (0.6, 1.2) − 0.5 (0.3, 0.4), w − 0.2 g.
        let want = [0.18, -0.04, 0.3 - 0.2 * 0.45, 0.4 - 0.2 * 1.0];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-12, "{got:?} vs {want:?}");
        }
    }

    /// With two stacked one-sample sets, each chain only ever sees its own set's sample.
    #[test]
    fn chains_train_on_their_own_set() {
        let device = cpu();
        let opts = (&device, DType::F64);
        let x = Tensor::<2>::from_data(TensorData::new(vec![1.0, 2.0], [2, 1]), opts);
        let y = Tensor::<2>::from_data(TensorData::new(vec![3.0, 4.0], [2, 1]), opts);
        let mut chains = LinearChains::new(
            ChainData::Finite { x, y, sets: 2 },
            2,
            0.0,
            &[0.1; 4],
            &[0.0; 4],
            Tensor::zeros([4, 1], opts),
        );
        for _ in 0..300 {
            chains.step();
        }
        // Set 0 (chains 0, 1) fits w = 3/1; set 1 (chains 2, 3) fits w = 4/2.
        let w = host(chains.w().clone());
        for (got, want) in w.iter().zip([3.0, 3.0, 2.0, 2.0]) {
            assert!((got - want).abs() < 1e-9, "{w:?}");
        }
    }

    /// Without noise (σ = 0, u = 0, w = 0) nothing moves, and the block sums are exact zeros.
    #[test]
    fn the_minimum_is_a_fixed_point_without_label_noise() {
        let device = cpu();
        let opts = (&device, DType::F64);
        let data = ChainData::Gaussian {
            a_sqrt: Tensor::<1>::from_data(TensorData::new(vec![1.0, 0.7], [2]), opts),
            teacher: Tensor::<1>::zeros([2], opts),
            label_std: 0.0,
        };
        let mut chains = LinearChains::new(
            data,
            4,
            0.5,
            &[0.3; 5],
            &[0.0; 5],
            Tensor::zeros([5, 2], opts),
        );
        let sums = chains.run(20, &Tensor::zeros([2], opts));
        assert!(host(sums.ee).iter().all(|v| *v == 0.0));
        assert!(host(sums.noise.unwrap()).iter().all(|v| *v == 0.0));
    }
}
