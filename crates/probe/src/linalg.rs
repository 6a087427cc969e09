//! Host-side f64 linear algebra for the small dense problems (tridiagonals, Gram matrices),
//! device↔host transfers and seeded random directions.

use burn::prelude::*;
use burn::tensor::DType;
use faer::{Mat, Side};
use rand::SeedableRng;
use rand::distr::Distribution;
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

/// A tensor's values on the host in f64, row-major.
pub fn to_host<const R: usize>(t: Tensor<R>) -> Vec<f64> {
    t.into_data()
        .convert::<f64>()
        .try_into_vec::<f64>()
        .expect("float tensor")
}

/// A host row-major matrix [rows, cols] as a device tensor of `dtype`.
pub fn to_device(
    values: Vec<f64>,
    rows: usize,
    cols: usize,
    device: &Device,
    dtype: DType,
) -> Tensor<2> {
    Tensor::from_data(TensorData::new(values, [rows, cols]), (device, dtype))
}

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
pub fn symmetric_eigen(a: &[f64], n: usize) -> (Vec<f64>, Vec<f64>) {
    assert_eq!(a.len(), n * n, "symmetric_eigen: {n}×{n} matrix");
    if n == 0 {
        return (Vec::new(), Vec::new());
    }
    // Symmetrize: rounding in the products that built `a` leaves it slightly asymmetric.
    let m = Mat::<f64>::from_fn(n, n, |i, j| 0.5 * (a[i * n + j] + a[j * n + i]));
    let eig = m
        .self_adjoint_eigen(Side::Lower)
        .expect("symmetric eigendecomposition of a finite matrix");
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

/// Orthonormal rows spanning the rows of Y [k, D] (Cholesky QR twice: two small Gram
/// matrices on the host, the products on the device). Rows that are numerically dependent
/// are dropped, so the result has at most k rows.
pub fn orthonormalize_rows(y: Tensor<2>) -> Tensor<2> {
    let mut q = y;
    for _ in 0..2 {
        let [k, _] = q.dims();
        let gram = to_host(q.clone().matmul(q.clone().transpose()));
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
        q = w.matmul(q);
    }
    q
}

#[cfg(test)]
mod tests {
    use super::*;

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
