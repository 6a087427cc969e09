//! Per-sample losses ℓ(f, y) of the network output f, with what the passes need: the value,
//! the gradient ∂ℓ/∂f, the output Hessian Λ = ∂²ℓ/∂f² times directions, and Λ^{1/2} times a
//! vector (for exact sampling from the Gauss-Newton matrix).
//!
//! Shapes: f, y [n, o]; directions [k, n, o].
//!
//! | loss | ℓ | ∂ℓ/∂f | Λ | Λ^{1/2} z |
//! |---|---|---|---|---|
//! | `mse` | ½‖f − y‖² | f − y | I | z |
//! | `cross-entropy` | −Σ_c y_c log p_c, p = softmax(f) | p − y | diag(p) − ppᵀ | √p ⊙ z − p (√p · z) |
//! | `clipped-mse` | ½(φ(f) − y)², φ = clamp(·, δ, 1 − δ) | (φ − y) 1[δ < f < 1 − δ] | 1[δ < f < 1 − δ] | 1[…] z |
//! | `toy2d` | Zhu et al.'s 2-D potential of f = w − x (SPEC §5.1) | branchwise | branchwise constant | branchwise |
//!
//! Cross-entropy takes one-hot (or any probability-vector) targets; its Λ assumes Σ_c y_c = 1.
//! The clipped MSE and the toy potential are piecewise: their derivatives are those of the
//! active piece, exact everywhere but on the boundaries.

use burn::prelude::*;
use burn::tensor::activation::{log_softmax, softmax};

use crate::layer::{indicator, lift};

/// Which per-sample loss.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Loss {
    /// ½‖f − y‖².
    Mse,
    /// Softmax cross-entropy.
    CrossEntropy,
    /// ½(clamp(f, δ, 1 − δ) − y)² (Zhu et al.'s one-hidden-layer net).
    ClippedMse {
        /// δ, the clipping margin (1e-3 in the paper).
        delta: f64,
    },
    /// Zhu et al.'s 2-D potential min{10(K₁a − K₂b)² + 100(K₁a + K₂b)², c² + d²} of f = w − x,
    /// a = f₀ − 1, b = f₁ − 1, c = f₀ + 1, d = f₁ + 1, K₁ = cos π/4, K₂ = sin π/4.
    Toy2d,
}

/// The toy potential's sharp branch, 10 (u·r)² + 100 (v·r)², with u = (K₁, −K₂), v = (K₁, K₂).
const SHARP: [f64; 2] = [10.0, 100.0];

fn k12() -> (f64, f64) {
    let (s, c) = std::f64::consts::FRAC_PI_4.sin_cos();
    (c, s)
}

fn cols(f: &Tensor<2>) -> (Tensor<2>, Tensor<2>) {
    (f.clone().narrow(1, 0, 1), f.clone().narrow(1, 1, 1))
}

fn cols3(r: &Tensor<3>) -> (Tensor<3>, Tensor<3>) {
    (r.clone().narrow(2, 0, 1), r.clone().narrow(2, 1, 1))
}

impl Loss {
    fn y(&self, y: Option<&Tensor<2>>, f: &Tensor<2>) -> Tensor<2> {
        match (self, y) {
            (_, Some(y)) => y.clone(),
            (Loss::Toy2d, None) => f.zeros_like(),
            _ => panic!("the {self:?} loss needs targets; the caller checks the data first"),
        }
    }

    /// Toy potential pieces: (u·r, v·r) of r = f − 1 for the sharp piece, (c, d) for the flat
    /// one, and the indicator of the flat piece being the smaller, [n, 1] each.
    fn toy_parts(f: &Tensor<2>) -> ([Tensor<2>; 2], [Tensor<2>; 2], Tensor<2>) {
        let (k1, k2) = k12();
        let (f0, f1) = cols(f);
        let (a, b) = (f0.clone() - 1.0, f1.clone() - 1.0);
        let s = a.clone() * k1 - b.clone() * k2;
        let t = a * k1 + b * k2;
        let (c, d) = (f0 + 1.0, f1 + 1.0);
        let q1 = s.clone().powi_scalar(2) * SHARP[0] + t.clone().powi_scalar(2) * SHARP[1];
        let q2 = c.clone().powi_scalar(2) + d.clone().powi_scalar(2);
        let flat = indicator(q2.lower(q1), f);
        ([s, t], [c, d], flat)
    }

    /// ℓ_n for every sample, [n].
    ///
    /// # Shapes
    /// `f`: [n, o]; `y`: [n, o] (may be `None` only for `toy2d`); returns [n].
    pub fn values(&self, f: &Tensor<2>, y: Option<&Tensor<2>>) -> Tensor<1> {
        let n = f.dims()[0];
        let per: Tensor<2> = match self {
            Loss::Mse => (f.clone() - self.y(y, f)).powi_scalar(2).sum_dim(1) * 0.5,
            Loss::CrossEntropy => (log_softmax(f.clone(), 1) * self.y(y, f)).sum_dim(1).neg(),
            Loss::ClippedMse { delta } => {
                (f.clone().clamp(*delta, 1.0 - delta) - self.y(y, f))
                    .powi_scalar(2)
                    .sum_dim(1)
                    * 0.5
            }
            Loss::Toy2d => {
                let ([s, t], [c, d], flat) = Self::toy_parts(f);
                let q1 = s.powi_scalar(2) * SHARP[0] + t.powi_scalar(2) * SHARP[1];
                let q2 = c.powi_scalar(2) + d.powi_scalar(2);
                q1.clone() + flat * (q2 - q1)
            }
        };
        per.reshape([n])
    }

    /// ∂ℓ_n/∂f_n, [n, o].
    ///
    /// # Shapes
    /// `f`: [n, o]; `y`: [n, o] (may be `None` only for `toy2d`); returns [n, o].
    pub fn grad(&self, f: &Tensor<2>, y: Option<&Tensor<2>>) -> Tensor<2> {
        match self {
            Loss::Mse => f.clone() - self.y(y, f),
            Loss::CrossEntropy => {
                let y = self.y(y, f);
                softmax(f.clone(), 1) * y.clone().sum_dim(1) - y
            }
            Loss::ClippedMse { delta } => {
                let inside = self.inside(f, *delta);
                (f.clone().clamp(*delta, 1.0 - delta) - self.y(y, f)) * inside
            }
            Loss::Toy2d => {
                let (k1, k2) = k12();
                let ([s, t], [c, d], flat) = Self::toy_parts(f);
                let (gs, gt) = (s * (2.0 * SHARP[0]), t * (2.0 * SHARP[1]));
                let sharp = Tensor::cat(vec![(gs.clone() + gt.clone()) * k1, (gt - gs) * k2], 1);
                let flat_g = Tensor::cat(vec![c * 2.0, d * 2.0], 1);
                sharp.clone() + flat * (flat_g - sharp)
            }
        }
    }

    fn inside(&self, f: &Tensor<2>, delta: f64) -> Tensor<2> {
        indicator(f.clone().greater_elem(delta), f)
            * indicator(f.clone().lower_elem(1.0 - delta), f)
    }

    /// Λ_n R_n for k directions, [k, n, o].
    ///
    /// # Shapes
    /// `f`: [n, o]; `r`: [k, n, o]; returns [k, n, o] (Λ depends on f only; `_y` is unused).
    pub fn hess_vec(&self, f: &Tensor<2>, _y: Option<&Tensor<2>>, r: Tensor<3>) -> Tensor<3> {
        match self {
            Loss::Mse => r,
            Loss::CrossEntropy => {
                let p = lift(&softmax(f.clone(), 1));
                let pr = (p.clone() * r.clone()).sum_dim(2);
                p.clone() * r - p * pr
            }
            Loss::ClippedMse { delta } => lift(&self.inside(f, *delta)) * r,
            Loss::Toy2d => self.toy_matvec(f, r, |x| x),
        }
    }

    /// Λ_n^{1/2} z_n, [n, o], with Λ^{1/2} (Λ^{1/2})ᵀ = Λ.
    ///
    /// # Shapes
    /// `f`: [n, o]; `z`: [n, o]; returns [n, o] (`_y` is unused).
    pub fn sqrt_hess_vec(&self, f: &Tensor<2>, _y: Option<&Tensor<2>>, z: Tensor<2>) -> Tensor<2> {
        match self {
            Loss::Mse => z,
            Loss::CrossEntropy => {
                let p = softmax(f.clone(), 1);
                let sp = p.clone().sqrt();
                let spz = (sp.clone() * z.clone()).sum_dim(1);
                sp * z - p * spz
            }
            Loss::ClippedMse { delta } => self.inside(f, *delta) * z,
            Loss::Toy2d => self
                .toy_matvec(f, z.unsqueeze_dim(0), f64::sqrt)
                .squeeze_dim::<2>(0),
        }
    }

    /// The toy potential's branchwise-constant Λ (or a function `g` of its eigenvalues) times
    /// r: sharp branch 2·10 uuᵀ + 2·100 vvᵀ, flat branch 2 I.
    fn toy_matvec(&self, f: &Tensor<2>, r: Tensor<3>, g: impl Fn(f64) -> f64) -> Tensor<3> {
        let (k1, k2) = k12();
        let (_, _, flat) = Self::toy_parts(f);
        let (r0, r1) = cols3(&r);
        let ur = r0.clone() * k1 - r1.clone() * k2;
        let vr = r0 * k1 + r1 * k2;
        let (lu, lv) = (g(2.0 * SHARP[0]), g(2.0 * SHARP[1]));
        let sharp = Tensor::cat(
            vec![
                ur.clone() * (lu * k1) + vr.clone() * (lv * k1),
                vr * (lv * k2) - ur * (lu * k2),
            ],
            2,
        );
        let flat_r = r * g(2.0);
        sharp.clone() + lift(&flat) * (flat_r - sharp)
    }

    /// Whether the loss needs targets.
    pub fn needs_targets(&self) -> bool {
        !matches!(self, Loss::Toy2d)
    }
}
