//! SGD on a fixed training set, exactly: the stationary second moment Σ = E[(w − w*)(w − w*)ᵀ]
//! of linear regression with minibatches of S indices drawn with replacement, for the data at
//! hand, without Thm. 6's approximations.
//!
//! With e = w − w*, residuals r_i = y_i − x_iᵀw* (Σ_i x_i r_i = 0 at the least-squares w*) and
//! Â = XᵀX/N, one step is e' = (I − λÂ)e − λξ with E[ξ | e] = 0 and
//! E[ξξᵀ | e] = (1/S)[(1/N)Σ_i x_i x_iᵀ (x_iᵀe − r_i)² − Âe eᵀÂ]. The second moment closes:
//!
//! Σ = (I − λÂ)Σ(I − λÂ) + (λ²/S)[M₄(Σ) − ÂΣÂ + R],
//! M₄(Σ) = (1/N)Σ_i (x_iᵀΣx_i) x_i x_iᵀ,  R = (1/N)Σ_i r_i² x_i x_iᵀ
//!
//! (the cross term −2r_i x_iᵀE[e] vanishes because E[e] → 0). Thm. 6 replaces M₄(Σ) by
//! Tr[ÂΣ]Â and R by 2L(w*)Â, which gives its Ĝ = 2I − λ(1 − 1/S)Â. For Gaussian inputs the
//! fourth moment is E[x xᵀΣx xᵀ] = 2AΣA + Tr[AΣ]A, and keeping the 2ÂΣÂ turns the factor into
//! (1 + 1/S) ([`thm6_gaussian_trace`](crate::thm6_gaussian_trace)). Here nothing is replaced.

use crate::fluctuation::TheoryError;
use crate::matrix::Matrix;

/// The exact stationary Tr[ÂΣ] of SGD (learning rate λ, batch S, indices with replacement) on
/// the training inputs `x` with least-squares residuals `residuals`.
///
/// The map Σ ↦ Σ − T(Σ), T the step's action on the second moment above, is self-adjoint in
/// the Frobenius inner product and positive definite on symmetric matrices when the second
/// moment is stable, so Σ is found by conjugate gradients, to a relative residual of 1e-12.
///
/// # Shapes
/// `x`: [N, D]; `residuals`: [N]. Over-parameterized sets (N ≤ D) interpolate: Σ = 0 on the
/// range of Â, and the function returns 0.
///
/// # Returns
/// Tr[ÂΣ], or [`TheoryError::Divergent`] when the second moment of SGD is not stable (the
/// map is not positive definite) or conjugate gradients do not converge.
pub fn finite_data_trace(
    x: &Matrix,
    residuals: &[f64],
    lr: f64,
    batch: f64,
) -> Result<f64, TheoryError> {
    let (n, d) = (x.rows, x.cols);
    assert_eq!(residuals.len(), n, "one residual per sample");
    if n <= d {
        return Ok(0.0);
    }
    let a_hat = x.transpose().mul(x).scale(1.0 / n as f64);
    let step = Matrix::identity(d).add(&a_hat.scale(-lr));
    let c = lr * lr / batch;
    // (1/N) Σ_i w_i x_i x_iᵀ.
    let weighted = |w: &[f64]| {
        let mut m = vec![0.0; d * d];
        for (i, wi) in w.iter().enumerate() {
            let row = &x.data[i * d..(i + 1) * d];
            for p in 0..d {
                let s = wi * row[p] / n as f64;
                for q in 0..d {
                    m[p * d + q] += s * row[q];
                }
            }
        }
        Matrix::new(d, d, m)
    };
    // Σ − T(Σ), the second moment's stationarity defect.
    let defect = |s: &Matrix| {
        let q: Vec<f64> = (0..n)
            .map(|i| {
                let row = &x.data[i * d..(i + 1) * d];
                (0..d)
                    .map(|p| row[p] * (0..d).map(|r| s.at(p, r) * row[r]).sum::<f64>())
                    .sum()
            })
            .collect();
        let moved = step.mul(s).mul(&step);
        let noise = weighted(&q).add(&a_hat.mul(s).mul(&a_hat).scale(-1.0));
        s.add(&moved.scale(-1.0)).add(&noise.scale(-c))
    };
    let dot = |a: &Matrix, b: &Matrix| a.data.iter().zip(&b.data).map(|(u, v)| u * v).sum::<f64>();
    let r2: Vec<f64> = residuals.iter().map(|r| r * r).collect();
    let rhs = weighted(&r2).scale(c);
    let norm = dot(&rhs, &rhs).sqrt();
    if norm == 0.0 {
        return Ok(0.0);
    }
    let mut sigma = Matrix::zeros(d, d);
    let mut res = rhs.clone();
    let mut dir = res.clone();
    let mut rr = dot(&res, &res);
    for _ in 0..(20 * d * d).max(100) {
        let ad = defect(&dir);
        let curv = dot(&dir, &ad);
        if curv <= 0.0 {
            return Err(TheoryError::Divergent(
                "SGD's second moment on this training set is not stable at this λ and S".into(),
            ));
        }
        let a = rr / curv;
        sigma = sigma.add(&dir.scale(a));
        res = res.add(&ad.scale(-a));
        let next = dot(&res, &res);
        if next.sqrt() <= 1e-12 * norm {
            return Ok(a_hat.mul(&sigma).trace());
        }
        dir = res.add(&dir.scale(next / rr));
        rr = next;
    }
    Err(TheoryError::Divergent(
        "conjugate gradients did not converge on Σ − T(Σ) = (λ²/S)R".into(),
    ))
}

#[cfg(test)]
#[path = "finite_tests.rs"]
mod tests;
