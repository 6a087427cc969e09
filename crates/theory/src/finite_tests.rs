//! The exact finite-data solution against the second-moment recursion written out sample by
//! sample (an independent path to the same equation), and Thm. 6's two forms against it.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use super::*;
use crate::{thm6_gaussian_trace, thm6_trace};

/// A training set x ~ N(0, I_D), y = uᵀx + ε, with its least-squares residuals.
fn data(n: usize, d: usize, seed: u64) -> (Matrix, Vec<f64>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut normal = || -> f64 { StandardNormal.sample(&mut rng) };
    let x = Matrix::new(n, d, (0..n * d).map(|_| normal()).collect());
    let y: Vec<f64> = (0..n)
        .map(|i| (0..d).map(|j| x.at(i, j) * 0.5).sum::<f64>() + normal())
        .collect();
    let xt = x.transpose();
    let xty: Vec<f64> = (0..d)
        .map(|j| (0..n).map(|i| x.at(i, j) * y[i]).sum())
        .collect();
    let w = xt.mul(&x).solve(&xty).unwrap();
    let r = (0..n)
        .map(|i| y[i] - (0..d).map(|j| x.at(i, j) * w[j]).sum::<f64>())
        .collect();
    (x, r)
}

/// E[e'e'ᵀ] over every ordered batch of S indices (with replacement), from e' = e − λg with
/// g = (1/S)Σ_{i∈B} x_i(x_iᵀe − r_i) and E[e] = 0, iterated to its fixed point.
fn enumerated_trace(x: &Matrix, r: &[f64], lr: f64, batch: usize) -> f64 {
    let (n, d) = (x.rows, x.cols);
    let row = |i: usize| Matrix::new(d, 1, x.data[i * d..(i + 1) * d].to_vec());
    let batches: Vec<Vec<usize>> = (0..n.pow(batch as u32))
        .map(|mut k| {
            (0..batch)
                .map(|_| {
                    let i = k % n;
                    k /= n;
                    i
                })
                .collect()
        })
        .collect();
    // Per batch: the map e ↦ M e + b with M = I − (λ/S)Σ x_i x_iᵀ, b = (λ/S)Σ r_i x_i.
    let maps: Vec<(Matrix, Matrix)> = batches
        .iter()
        .map(|b| {
            let mut m = Matrix::identity(d);
            let mut v = Matrix::zeros(d, 1);
            for &i in b {
                let xi = row(i);
                m = m.add(&xi.mul(&xi.transpose()).scale(-lr / batch as f64));
                v = v.add(&xi.scale(lr * r[i] / batch as f64));
            }
            (m, v)
        })
        .collect();
    let mut sigma = Matrix::zeros(d, d);
    for _ in 0..20_000 {
        let mut next = Matrix::zeros(d, d);
        for (m, v) in &maps {
            next = next.add(
                &m.mul(&sigma)
                    .mul(&m.transpose())
                    .add(&v.mul(&v.transpose())),
            );
        }
        sigma = next.scale(1.0 / maps.len() as f64);
    }
    let a_hat = x.transpose().mul(x).scale(1.0 / n as f64);
    a_hat.mul(&sigma).trace()
}

#[test]
fn conjugate_gradients_solve_the_enumerated_recursion() {
    for (batch, seed) in [(1, 1), (2, 2), (3, 3)] {
        let (x, r) = data(7, 2, seed);
        let want = enumerated_trace(&x, &r, 0.1, batch);
        let got = finite_data_trace(&x, &r, 0.1, batch as f64).unwrap();
        assert!(
            (got - want).abs() <= 1e-9 * want,
            "S = {batch}: CG {got}, enumerated {want}"
        );
    }
}

#[test]
fn over_parameterized_sets_and_unstable_rates() {
    let (x, r) = data(3, 5, 4);
    assert_eq!(finite_data_trace(&x, &r, 0.1, 2.0).unwrap(), 0.0);
    let (x, r) = data(40, 3, 5);
    assert!(
        finite_data_trace(&x, &r, 5.0, 1.0).is_err(),
        "λ far past 2/a_max"
    );
}

/// With many samples per dimension, the exact value sits with the Gaussian fourth moment's
/// (1 + 1/S) form, not with Thm. 6's (1 − 1/S). The empirical fourth moment of N samples
/// still differs from the Gaussian one by a few percent (its variance is large), so the
/// check is that the exact value is far nearer the first, at batches where the two differ.
#[test]
fn the_gaussian_form_is_the_large_alpha_limit() {
    let (n, d, lr) = (20_000, 2, 0.3);
    let (x, r) = data(n, d, 6);
    let a_hat = x.transpose().mul(&x).scale(1.0 / n as f64);
    let s2 = r.iter().map(|v| v * v).sum::<f64>() / n as f64;
    let alpha = n as f64 / d as f64;
    // Thm. 6 takes σ²(1 − 1/α) for the residual variance; give it this set's own.
    let sigma2 = s2 / (1.0 - 1.0 / alpha);
    for batch in [1.0, 2.0, 4.0] {
        let exact = finite_data_trace(&x, &r, lr, batch).unwrap();
        let gauss = thm6_gaussian_trace(&a_hat, lr, sigma2, batch, alpha).unwrap();
        let thm6 = thm6_trace(&a_hat, lr, sigma2, batch, alpha).unwrap();
        assert!(
            (exact - gauss).abs() < 0.35 * (exact - thm6).abs(),
            "S = {batch}: exact {exact}, (1 + 1/S) {gauss}, (1 − 1/S) {thm6}"
        );
    }
}
