//! Host-side f64 linear algebra for the small dense problems (tridiagonals, Gram matrices),
//! device↔host transfers and seeded random directions.

use burn::prelude::*;
use burn::tensor::DType;
use faer::{Mat, Side};
use noisescope_models::ops::{self, matmul};
use rand::SeedableRng;
use rand::distr::Distribution;
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

// The transfers live in the data crate, the lowest one, so that every crate may use them.
pub use noisescope_data::transfer::{to_device, to_host};

/// The kind of random probe vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProbeKind {
    /// Entries ±1 with equal probability (Hutchinson's lowest-variance choice).
    Rademacher,
    /// Standard normal entries.
    Gaussian,
}

/// k random directions [k, D] drawn on the host from a ChaCha8 stream seeded by `seed`, so that
/// one seed gives the same directions on every backend.
///
/// # Shapes
/// Returns [k, D] (D = `d`) in `dtype` on `device`.
pub fn random_directions(
    k: usize,
    d: usize,
    kind: ProbeKind,
    seed: u64,
    device: &Device,
    dtype: DType,
) -> Tensor<2> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let v: Vec<f64> = match kind {
        ProbeKind::Rademacher => (0..k * d)
            .map(|_| {
                if rand::Rng::random::<bool>(&mut rng) {
                    1.0
                } else {
                    -1.0
                }
            })
            .collect(),
        ProbeKind::Gaussian => (0..k * d)
            .map(|_| StandardNormal.sample(&mut rng))
            .collect(),
    };
    to_device(v, k, d, device, dtype)
}

/// Eigenpairs of a symmetric n×n matrix (row-major, f64), eigenvalues in descending order,
/// eigenvectors as the rows of a row-major [n, n] array.
///
/// A matrix with NaN or infinite entries (θ or data that diverged) has no eigenpairs: every
/// value and vector entry comes back NaN, so that callers record the failure (a probe's null,
/// a dynamic's error) instead of the process aborting.
pub fn symmetric_eigen(a: &[f64], n: usize) -> (Vec<f64>, Vec<f64>) {
    assert_eq!(a.len(), n * n, "symmetric_eigen: {n}×{n} matrix");
    if n == 0 {
        return (Vec::new(), Vec::new());
    }
    let failed = || (vec![f64::NAN; n], vec![f64::NAN; n * n]);
    if a.iter().any(|v| !v.is_finite()) {
        return failed();
    }
    // Symmetrize: rounding in the products that built `a` leaves it slightly asymmetric.
    let m = Mat::<f64>::from_fn(n, n, |i, j| 0.5 * (a[i * n + j] + a[j * n + i]));
    let Ok(eig) = m.self_adjoint_eigen(Side::Lower) else {
        return failed();
    };
    let s = eig.S().column_vector();
    let u = eig.U();
    // faer returns ascending order.
    let values = (0..n).rev().map(|j| s[j]).collect();
    let mut vectors = Vec::with_capacity(n * n);
    for j in (0..n).rev() {
        vectors.extend((0..n).map(|i| u[(i, j)]));
    }
    (values, vectors)
}

/// Eigenpairs of the symmetric tridiagonal matrix with diagonal `alpha` and off-diagonal
/// `beta` (len m − 1), descending, eigenvectors as rows of a row-major [m, m] array.
pub fn tridiagonal_eigen(alpha: &[f64], beta: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let m = alpha.len();
    let mut t = vec![0.0; m * m];
    for i in 0..m {
        t[i * m + i] = alpha[i];
        if i + 1 < m {
            t[i * m + i + 1] = beta[i];
            t[(i + 1) * m + i] = beta[i];
        }
    }
    symmetric_eigen(&t, m)
}

/// Columns per chunk of a reduction over the parameter axis. burn 0.22.1's wgpu `sum_dim`
/// along an axis much longer than 2¹⁵, and matmuls with such an inner dimension, were seen to
/// return wrong sums on lavapipe (a row of 407 050 normals summed to −362 instead of 627; the
/// full `sum()` stayed right), so every reduction over D goes through chunks of at most this
/// many columns. On ndarray the chunks cost one extra copy of the operands.
pub const REDUCTION_CHUNK: usize = 1 << 15;

/// Σ over the column chunks [s, s + w) of [0, d) of `part(s, w)`; None when d = 0.
fn sum_over_chunks(d: usize, part: impl Fn(usize, usize) -> Tensor<2>) -> Option<Tensor<2>> {
    (0..d)
        .step_by(REDUCTION_CHUNK)
        .map(|s| part(s, REDUCTION_CHUNK.min(d - s)))
        .reduce(|x, y| x + y)
}

/// A Bᵀ for A [k, D] and B [m, D]: the inner products ⟨a_i, b_j⟩ as [k, m], summed over D in
/// chunks of [`REDUCTION_CHUNK`] columns.
///
/// # Shapes
/// `a`: [k, D]; `b`: [m, D]; returns [k, m].
pub fn inner_products(a: &Tensor<2>, b: &Tensor<2>) -> Tensor<2> {
    sum_over_chunks(a.dims()[1], |s, w| {
        matmul(
            a.clone().narrow(1, s, w),
            false,
            b.clone().narrow(1, s, w),
            true,
        )
    })
    .unwrap_or_else(|| Tensor::zeros([a.dims()[0], b.dims()[0]], (&a.device(), a.dtype())))
}

/// Σ_j t_ij for each row of T [k, D], as [k], summed in chunks of [`REDUCTION_CHUNK`] columns.
///
/// # Shapes
/// `t`: [k, D]; returns [k].
pub fn row_sums(t: Tensor<2>) -> Tensor<1> {
    let [k, d] = t.dims();
    sum_over_chunks(d, |s, w| ops::sum_dim(t.clone().narrow(1, s, w), 1))
        .map(|x| x.reshape([k]))
        .unwrap_or_else(|| Tensor::zeros([k], (&t.device(), t.dtype())))
}

/// ⟨a_i, b_i⟩ for the rows of A and B [k, D], as [k].
///
/// # Shapes
/// `a`, `b`: [k, D]; returns [k].
pub fn row_dots(a: &Tensor<2>, b: &Tensor<2>) -> Tensor<1> {
    row_sums(a.clone() * b.clone())
}

/// Orthonormal rows spanning the rows of Y [k, D] (Cholesky QR twice: two small Gram
/// matrices on the host, the products on the device). Rows that are numerically dependent
/// are dropped, so the result has at most k rows.
///
/// # Shapes
/// `y`: [k, D]; returns [r, D] with r ≤ k the numerical rank.
pub fn orthonormalize_rows(y: Tensor<2>) -> Tensor<2> {
    let mut q = y;
    for _ in 0..2 {
        let [k, _] = q.dims();
        let gram = to_host(inner_products(&q, &q));
        // Y Yᵀ = U Λ Uᵀ; Q = Λ^{-1/2} Uᵀ Y keeps the well-conditioned directions only.
        let (vals, vecs) = symmetric_eigen(&gram, k);
        let top = vals.first().copied().unwrap_or(0.0).max(0.0);
        let keep: Vec<usize> = (0..k)
            .filter(|&j| vals[j] > top * 1e-20 && vals[j] > 0.0)
            .collect();
        let mut w = Vec::with_capacity(keep.len() * k);
        for &j in &keep {
            let s = vals[j].sqrt();
            w.extend(vecs[j * k..(j + 1) * k].iter().map(|u| u / s));
        }
        let w = to_device(w, keep.len(), k, &q.device(), q.dtype());
        q = matmul(w, false, q, false);
    }
    q
}

/// k random unit directions [k, D] (Gaussian, normalized): the directional alignment's
/// baseline, and a Lanczos start.
///
/// # Shapes
/// Returns [k, D] in `dtype` on `device`.
pub fn random_unit_directions(
    k: usize,
    d: usize,
    seed: u64,
    device: &Device,
    dtype: DType,
) -> Tensor<2> {
    let v = random_directions(k, d, ProbeKind::Gaussian, seed, device, dtype);
    let norms = row_sums(v.clone().square()).sqrt().reshape([k, 1]);
    v / norms
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Chunked products and sums equal the plain ones across chunk boundaries (D a multiple
    /// of the chunk plus a ragged tail, and D below one chunk).
    #[test]
    #[allow(deprecated)] // Device::ndarray: still the f64 CPU reference backend here
    fn chunked_reductions_match_plain_ones() {
        let device = Device::ndarray();
        for d in [7, REDUCTION_CHUNK, 2 * REDUCTION_CHUNK + 3] {
            let a = random_directions(3, d, ProbeKind::Gaussian, 1, &device, DType::F64);
            let b = random_directions(2, d, ProbeKind::Gaussian, 2, &device, DType::F64);
            let (ah, bh) = (to_host(a.clone()), to_host(b.clone()));
            let ip = to_host(inner_products(&a, &b));
            for i in 0..3 {
                for j in 0..2 {
                    let want: f64 = (0..d).map(|l| ah[i * d + l] * bh[j * d + l]).sum();
                    assert!(
                        (ip[i * 2 + j] - want).abs() < 1e-9 * (d as f64).sqrt(),
                        "d = {d}"
                    );
                }
                let want: f64 = ah[i * d..(i + 1) * d].iter().sum();
                let got = to_host(row_sums(a.clone()))[i];
                assert!((got - want).abs() < 1e-9 * (d as f64).sqrt(), "d = {d}");
            }
            let dots = to_host(row_dots(&a.clone().narrow(0, 0, 2), &b));
            for (i, got) in dots.iter().enumerate() {
                let want: f64 = (0..d).map(|l| ah[i * d + l] * bh[i * d + l]).sum();
                assert!((got - want).abs() < 1e-9 * (d as f64).sqrt());
            }
        }
    }

    #[test]
    fn eigen_of_a_known_matrix() {
        // [[2, 1], [1, 2]]: eigenvalues 3, 1 with vectors (1, 1)/√2, (1, −1)/√2.
        let (vals, vecs) = symmetric_eigen(&[2.0, 1.0, 1.0, 2.0], 2);
        assert!((vals[0] - 3.0).abs() < 1e-14 && (vals[1] - 1.0).abs() < 1e-14);
        assert!((vecs[0].abs() - 0.5f64.sqrt()).abs() < 1e-14);
        assert!((vecs[0] * vecs[1] - 0.5).abs() < 1e-14);
    }

    #[test]
    fn tridiagonal_of_the_path_graph_laplacian() {
        // The m×m tridiagonal (2, −1) has eigenvalues 2 − 2 cos(jπ/(m+1)).
        let m = 7;
        let (vals, _) = tridiagonal_eigen(&vec![2.0; m], &vec![-1.0; m - 1]);
        for (j, v) in vals.iter().enumerate() {
            let want = 2.0 - 2.0 * ((m - j) as f64 * std::f64::consts::PI / (m as f64 + 1.0)).cos();
            assert!((v - want).abs() < 1e-12, "{v} vs {want}");
        }
    }
}
