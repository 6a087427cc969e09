//! Seeded initialization of θ, drawn on the host (ChaCha8) so that one seed gives the same θ
//! on every backend and in every precision.
//!
//! - `torch-default`: PyTorch's default for `Linear` and `Conv2d`, weights and biases
//!   U(−1/√fan_in, 1/√fan_in).
//! - `xavier`: weights U(−a, a) with a = √(6 / (fan_in + fan_out)), biases 0.
//! - `flat-glorot`: every entry of θ, biases included, U(−a, a) with a = √(3 / D): TensorFlow's
//!   Glorot-uniform applied to θ as one flat variable of D entries (fan_in = fan_out = D), as
//!   Zhu et al.'s `OneHiddenLayer/gd.py` initializes its 3h parameters (a = 1/√h there).

use burn::prelude::*;
use noisescope_data::Precision;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::layout::Layout;

/// How θ is initialized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Init {
    /// U(±1/√fan_in) for weights and biases.
    #[default]
    TorchDefault,
    /// Glorot uniform weights, zero biases.
    Xavier,
    /// U(±√(3/D)) for every entry, biases included (Glorot on the flat θ).
    FlatGlorot,
}

impl Init {
    /// θ ∈ R^D for `layout` as host values.
    pub fn values(self, layout: &Layout, seed: u64) -> Vec<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut theta = Vec::with_capacity(layout.dim());
        for b in &layout.blocks {
            let bound = match self {
                Init::TorchDefault => 1.0 / (b.fan_in as f64).sqrt(),
                Init::Xavier if b.is_bias => 0.0,
                Init::Xavier => (6.0 / (b.fan_in + b.fan_out) as f64).sqrt(),
                Init::FlatGlorot => (3.0 / layout.dim() as f64).sqrt(),
            };
            theta.extend((0..b.len).map(|_| {
                if bound == 0.0 {
                    0.0
                } else {
                    rng.random_range(-bound..bound)
                }
            }));
        }
        theta
    }

    /// θ as a device tensor [D].
    ///
    /// # Shapes
    /// Returns [D] (D = `layout.dim()`) on `device` in `precision`.
    pub fn tensor(
        self,
        layout: &Layout,
        seed: u64,
        device: &Device,
        precision: Precision,
    ) -> Tensor<1> {
        let v = self.values(layout, seed);
        let d = v.len();
        Tensor::from_data(TensorData::new(v, [d]), (device, precision.dtype()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_and_seeds() {
        let mut l = Layout::default();
        l.push("w".into(), vec![50, 100], 100, 50, false);
        l.push("b".into(), vec![50], 100, 50, true);
        let t = Init::TorchDefault.values(&l, 1);
        assert!(t.iter().all(|v| v.abs() <= 0.1));
        assert!(t.iter().any(|v| v.abs() > 0.09));
        assert_eq!(t, Init::TorchDefault.values(&l, 1));
        assert_ne!(t, Init::TorchDefault.values(&l, 2));
        let x = Init::Xavier.values(&l, 1);
        let a = (6.0f64 / 150.0).sqrt();
        assert!(x[..5000].iter().all(|v| v.abs() <= a) && x[5000..].iter().all(|&v| v == 0.0));
        // Glorot on the flat θ: one bound √(3/D) for all 5050 entries, biases drawn too.
        let f = Init::FlatGlorot.values(&l, 1);
        let a = (3.0f64 / 5050.0).sqrt();
        assert!(f.iter().all(|v| v.abs() <= a) && f[5000..].iter().any(|&v| v != 0.0));
        assert!(f.iter().any(|v| v.abs() > 0.9 * a));
    }
}
