//! Host kernels for tanh layers in f32 on host memory: the forward map and the backward
//! product in one vectorized pass each.
//!
//! burn-ndarray evaluates an f32 tanh element by element through glibc's f64 `tanh` (and
//! `expm1` below it): 17% of a tanh 784–2048–10 SGD step on 128 samples, one core (perf,
//! 2026-12-06), where the matmuls took 42%. The backward product (1 − a²) ⊙ δ was four
//! passes, each with its own buffer. f64 keeps burn's ops: it is the reference precision.

use crate::host_conv::{Real, tensor, values, values_in_place};
use burn::prelude::*;

/// tanh(x) by Eigen's single-precision rational approximation (`generic_fast_tanh_float`,
/// Eigen 3.4): x clamped to ±7.90531, where tanh rounds to ±1 in f32, then an odd degree-13
/// numerator over an even degree-6 denominator; x itself below 4·10⁻⁴, where tanh(x) = x
/// to within half an ulp. Branch-free, so a loop over it vectorizes. Against the correctly
/// rounded tanh (f64, every 64th f32 in [0, 9]): 91% of points exact, 99.6% within 2 ulp,
/// the worst 6 ulp near |x| = 5.8, where tanh is 1 − 2·10⁻⁵ and 6 ulp are 3.6·10⁻⁷ absolute.
#[inline]
// Eigen's published coefficients, digit for digit.
#[allow(clippy::excessive_precision)]
pub(crate) fn tanh_f32(x: f32) -> f32 {
    const CLAMP: f32 = 7.90531110763549805;
    const TINY: f32 = 0.0004;
    let c = x.clamp(-CLAMP, CLAMP);
    let x2 = c * c;
    let mut p = x2 * -2.76076847742355e-16 + 2.00018790482477e-13;
    p = x2 * p + -8.60467152213735e-11;
    p = x2 * p + 5.12229709037114e-08;
    p = x2 * p + 1.48572235717979e-05;
    p = x2 * p + 6.37261928875436e-04;
    p = x2 * p + 4.89352455891786e-03;
    p *= c;
    let mut q = x2 * 1.19825839466702e-06 + 1.18534705686654e-04;
    q = x2 * q + 2.26843463243900e-03;
    q = x2 * q + 4.89352518554385e-03;
    if x.abs() < TINY { x } else { p / q }
}

/// a = tanh(z), elementwise, for f32 on host memory (the caller's [`Engine`] says so).
///
/// [`Engine`]: crate::kernels::Engine
///
/// # Shapes
/// z [n, f] → [n, f].
pub(crate) fn tanh(z: Tensor<2>) -> Tensor<2> {
    let (device, shape) = (z.device(), z.dims());
    let mut v = values::<f32, 2>(z).into_vec();
    v.iter_mut().for_each(|x| *x = tanh_f32(*x));
    tensor(v, shape, &device)
}

/// δ_z = (1 − a²) ⊙ δ_a, tanh's backward product from its output a, on host memory, with
/// burn's bits: the same three roundings (a², 1 − a², the product) in one pass.
///
/// # Shapes
/// a [n, f], δ_a [n, f] → [n, f].
pub(crate) fn tanh_backward<T: Float>(a: &Tensor<2>, delta: Tensor<2>) -> Tensor<2> {
    let (device, shape) = (delta.device(), delta.dims());
    let av = values::<T, 2>(a.clone());
    let mut d = values::<T, 2>(delta).into_vec();
    let one = T::from_elem(1.0);
    d.iter_mut()
        .zip(av.iter())
        .for_each(|(d, &a)| *d = (one - a * a) * *d);
    tensor(d, shape, &device)
}

/// R a = φ'(z) ⊙ R z for tanh (φ' = 1 − a²), every direction in one pass, on host memory;
/// `None` when R z is a strided view (the caller runs burn's ops). Same bits as burn's
/// `lift((−a²) + 1) * R z`.
///
/// # Shapes
/// `a`: [n, f]; `rz`: [k, n, f] → [k, n, f].
pub(crate) fn tanh_r_forward<T: Float>(a: &Tensor<2>, rz: &Tensor<3>) -> Option<Tensor<3>> {
    tanh_r_backward::<T>(a, rz, None)
}

/// R δ_z = φ'(z) ⊙ R δ_a + φ''(z) ⊙ R z ⊙ δ_a for tanh (φ' = 1 − a², φ'' = −2a(1 − a²)), every
/// direction in one pass, on host memory; `cross` holds (δ_a [n, f], R z [k, n, f]) when the
/// φ'' term is wanted. `None` when R δ or R z is a strided view. Same bits as burn's
/// `lift(s) * R δ + lift(((s · a) · −2) * δ) * R z` with s = (−a²) + 1, term by term in that
/// order.
///
/// # Shapes
/// `a`: [n, f]; `r_delta`: [k, n, f] → [k, n, f].
pub(crate) fn tanh_r_backward<T: Float>(
    a: &Tensor<2>,
    r_delta: &Tensor<3>,
    cross: Option<(&Tensor<2>, &Tensor<3>)>,
) -> Option<Tensor<3>> {
    slope_pass::<T>(a, r_delta, cross, Slope::Tanh)
}

/// R a = 1[z > 0] ⊙ R z (and ReLU's R δ_z, the same product: φ'' = 0), every direction in one
/// pass, on host memory for two or more directions stored row-major; `None` otherwise. Same
/// bits as burn's `lift(indicator(z > 0)) * r`.
///
/// # Shapes
/// `z`: [n, f]; `r`: [k, n, f] → [k, n, f].
pub(crate) fn relu_r<T: Float>(z: &Tensor<2>, r: &Tensor<3>) -> Option<Tensor<3>> {
    // For one direction burn's mask-and-multiply was faster (0.10 against 0.24–0.37 ms on
    // [512, 512], 2026-12-06); for a block of 20 the kernel is 10× faster (0.36 against
    // 4.1 ms on [20, 128, 512]).
    if r.dims()[0] < 2 {
        return None;
    }
    slope_pass::<T>(z, r, None, Slope::Relu)
}

/// The host floats with the arithmetic these kernels use.
pub(crate) trait Float:
    Real + std::ops::Mul<Output = Self> + std::ops::Sub<Output = Self> + std::ops::Add<Output = Self>
{
}

impl<T> Float for T where
    T: Real + std::ops::Mul<Output = T> + std::ops::Sub<Output = T> + std::ops::Add<Output = T>
{
}

/// Which φ' the slope pass reads from its [n, f] input.
#[derive(Clone, Copy)]
enum Slope {
    /// From a = tanh(z): 1 − a².
    Tanh,
    /// From z: 1 where z > 0, else 0.
    Relu,
}

/// out_j = s ⊙ r_j (+ t ⊙ rz_j with t = ((s ⊙ a) · −2) ⊙ δ when `cross` is given), for every
/// direction j, with s = φ' from `x`.
fn slope_pass<T: Float>(
    x: &Tensor<2>,
    r: &Tensor<3>,
    cross: Option<(&Tensor<2>, &Tensor<3>)>,
    slope: Slope,
) -> Option<Tensor<3>> {
    if x.dims().iter().product::<usize>() == 0 || r.dims()[1..] != x.dims()[..] {
        return None;
    }
    // A strided [k, n, f] operand (a view by direction of a product's rows) would need a copy
    // through burn first; burn's own broadcast product reads it in one pass, so it keeps it.
    let rv = values_in_place::<T, 3>(r)?;
    let cross = match cross {
        Some((delta, rz)) => Some((delta, values_in_place::<T, 3>(rz)?)),
        None => None,
    };
    let (device, shape) = (r.device(), r.dims());
    let xv = values::<T, 2>(x.clone());
    let (one, zero) = (T::from_elem(1.0), T::ZERO);
    let s: Vec<T> = match slope {
        Slope::Tanh => xv.iter().map(|&a| one - a * a).collect(),
        Slope::Relu => xv
            .iter()
            .map(|&z| if z > zero { one } else { zero })
            .collect(),
    };
    let mut out = vec![T::ZERO; rv.len()];
    let plane = s.len();
    match cross {
        None => {
            for (o, r) in out.chunks_mut(plane).zip(rv.chunks(plane)) {
                for ((o, &r), &s) in o.iter_mut().zip(r).zip(&s) {
                    *o = s * r;
                }
            }
        }
        Some((delta, zv)) => {
            let two = T::from_elem(-2.0);
            let t: Vec<T> = values::<T, 2>(delta.clone())
                .iter()
                .zip(&s)
                .zip(xv.iter())
                .map(|((&d, &s), &a)| ((s * a) * two) * d)
                .collect();
            for ((o, r), z) in out
                .chunks_mut(plane)
                .zip(rv.chunks(plane))
                .zip(zv.chunks(plane))
            {
                for ((((o, &r), &z), &s), &t) in o.iter_mut().zip(r).zip(z).zip(&s).zip(&t) {
                    *o = s * r + t * z;
                }
            }
        }
    }
    Some(tensor(out, shape, &device))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host_conv::with_real;
    use crate::testing::cpu;
    use burn::tensor::DType;

    /// Distance in ulps between two finite f32 of the same sign.
    fn ulps(a: f32, b: f32) -> u32 {
        (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs() as u32
    }

    #[test]
    fn fast_tanh_is_within_six_ulps_and_4e_7_of_the_correctly_rounded_tanh() {
        // Every 64th f32 in [0, 9] (≈ 17 M points), both signs by symmetry of the formula.
        let (mut worst, mut at, mut abs, mut within2, mut all) = (0, 0.0f32, 0.0f64, 0, 0);
        let mut bits = 0u32;
        while f32::from_bits(bits) <= 9.0 {
            let x = f32::from_bits(bits);
            let exact = (x as f64).tanh();
            let e = ulps(tanh_f32(x), exact as f32);
            if e > worst {
                (worst, at) = (e, x);
            }
            abs = abs.max((tanh_f32(x) as f64 - exact).abs());
            within2 += usize::from(e <= 2);
            all += 1;
            assert_eq!(tanh_f32(-x), -tanh_f32(x));
            bits += 64;
        }
        assert!(worst <= 6, "{worst} ulp at x = {at}");
        assert!(abs < 4e-7, "{abs:e} absolute");
        assert!(
            within2 as f64 >= 0.995 * all as f64,
            "{within2} of {all} within 2 ulp"
        );
        assert_eq!(tanh_f32(40.0), 1.0);
        assert_eq!(tanh_f32(-1e30), -1.0);
        assert!(tanh_f32(f32::NAN).is_nan());
    }

    #[test]
    fn host_tanh_layers_agree_with_burns() {
        let z: Vec<f32> = (0..300).map(|j| (j as f32 - 150.0) * 0.037).collect();
        let z = Tensor::<1>::from_data(TensorData::new(z, [300]), (&cpu(), DType::F32))
            .reshape([20, 15]);
        let ours = tanh(z.clone()).into_data().try_to_vec::<f32>().unwrap();
        let theirs = z.clone().tanh().into_data().try_to_vec::<f32>().unwrap();
        for (a, b) in ours.iter().zip(&theirs) {
            assert!(ulps(*a, *b) <= 6, "{a} against {b}");
        }
        // The backward product has burn's bits, in f32 and f64.
        for dtype in [DType::F32, DType::F64] {
            let a = z.clone().cast(dtype).tanh();
            let delta = (z.clone().cast(dtype) * 0.61).sin();
            let ours = with_real!(dtype, T => tanh_backward::<T>(&a, delta.clone()));
            let theirs = (a.powi_scalar(2).neg() + 1.0) * delta;
            let bits = |t: Tensor<2>| {
                let d = t.into_data().convert::<f64>();
                d.try_to_vec::<f64>().unwrap()
            };
            assert_eq!(bits(ours), bits(theirs), "{dtype:?}");
        }
    }

    /// The R-pass kernels against the burn expressions they replace (activation.rs), bit for
    /// bit, in f32 and f64, for three directions; zeros and negative zeros among the inputs.
    #[test]
    fn r_pass_kernels_have_the_bits_of_burns_expressions() {
        let device = cpu();
        let wave = |len: usize, f: f64, dtype: DType| {
            let v: Vec<f64> = (0..len)
                .map(|j| {
                    if j % 17 == 0 {
                        -0.0
                    } else {
                        ((j as f64) * f).sin() * 3.0
                    }
                })
                .collect();
            Tensor::<1>::from_data(TensorData::new(v, [len]), (&device, DType::F64)).cast(dtype)
        };
        // Bits, not values: −0.0 and +0.0 must not pass for each other.
        let bits = |t: Tensor<3>| -> Vec<u64> {
            let v = t.into_data().convert::<f64>().try_to_vec::<f64>().unwrap();
            v.iter().map(|x| x.to_bits()).collect()
        };
        for dtype in [DType::F32, DType::F64] {
            let z = wave(60, 0.37, dtype).reshape([5, 12]);
            let a = z.clone().tanh();
            let delta = wave(60, 0.91, dtype).reshape([5, 12]);
            let r = wave(180, 0.53, dtype).reshape([3, 5, 12]);
            let rz = wave(180, 0.29, dtype).reshape([3, 5, 12]);
            let s = crate::layer::lift(&(a.clone().powi_scalar(2).neg() + 1.0));
            let c = (a.clone().powi_scalar(2).neg() + 1.0) * a.clone() * (-2.0);
            type Pass = fn(&Tensor<2>, &Tensor<3>) -> Option<Tensor<3>>;
            type Cross = fn(&Tensor<2>, &Tensor<3>, Cross3) -> Option<Tensor<3>>;
            type Cross3<'a> = Option<(&'a Tensor<2>, &'a Tensor<3>)>;
            let (tanh_r_forward, tanh_r_backward, relu_r): (Pass, Cross, Pass) = with_real!(dtype, T => (
                tanh_r_forward::<T>,
                tanh_r_backward::<T>,
                relu_r::<T>,
            ));
            let cases = [
                (tanh_r_forward(&a, &r), s.clone() * r.clone()),
                (tanh_r_backward(&a, &r, None), s.clone() * r.clone()),
                (
                    tanh_r_backward(&a, &r, Some((&delta, &rz))),
                    s * r.clone() + crate::layer::lift(&(c * delta.clone())) * rz.clone(),
                ),
                (
                    relu_r(&z, &r),
                    crate::layer::lift(&crate::layer::indicator(z.clone().greater_elem(0.0), &z))
                        * r.clone(),
                ),
            ];
            // A strided block of directions is left to burn.
            let strided = wave(180, 0.53, dtype).reshape([5, 3, 12]).swap_dims(0, 1);
            assert!(relu_r(&z, &strided).is_none());
            // One direction is left to burn too (faster there).
            assert!(relu_r(&z, &r.clone().narrow(0, 0, 1)).is_none());
            assert!(tanh_r_backward(&a, &r, Some((&delta, &strided))).is_none());
            for (j, (ours, theirs)) in cases.into_iter().enumerate() {
                let ours = ours.expect("a row-major block takes the kernel");
                assert_eq!(bits(ours), bits(theirs), "case {j}, {dtype:?}");
            }
        }
    }
}
