//! L2-regularized and high-dimensional linear regression (SPEC §4): Ziyin et al.'s Thm. 4 (the
//! test loss of SGD with weight decay Γ and noiseless labels, whose optimum γ can be negative)
//! and Thm. 6 (Tr[ÂΣ] against α = N/D).

use crate::fluctuation::TheoryError;
use crate::matrix::Matrix;

/// Thm. 4: the stationary test loss L_test = E[½ (w − u)ᵀ A (w − u)] of SGD (learning rate λ,
/// batch S) on ℓ = ½(wᵀx − uᵀx)² + ½ wᵀΓw, x ~ N(0, A):
/// L_test = (λ/2S)(Tr[AK⁻²Γ²U] κ + r) + ½ Tr[AK⁻²Γ²U], with K = A + Γ, U = uuᵀ,
/// G = 2I − λ(K + K⁻¹A²/S), κ = Tr[A²K⁻¹G⁻¹]/(1 − (λ/S) Tr[A²K⁻¹G⁻¹]) and
/// r = Tr[A³K⁻³Γ²G⁻¹U]/(1 − (λ/S) Tr[A²K⁻¹G⁻¹]).
pub fn thm4_test_loss(
    a: &Matrix,
    gamma: &Matrix,
    u: &[f64],
    lr: f64,
    batch: f64,
) -> Result<f64, TheoryError> {
    let d = a.rows;
    let k = a.add(gamma);
    let ki = k
        .inverse()
        .ok_or_else(|| TheoryError::Divergent("A + Γ is singular".into()))?;
    let a2 = a.mul(a);
    let g = Matrix::identity(d)
        .add(&Matrix::identity(d))
        .add(&k.add(&ki.mul(&a2).scale(1.0 / batch)).scale(-lr));
    let gi = g
        .inverse()
        .ok_or_else(|| TheoryError::Divergent("G is singular".into()))?;
    if (0..d).any(|i| gi.at(i, i) <= 0.0) {
        return Err(TheoryError::Divergent("G is not positive definite".into()));
    }
    let uu = Matrix::new(d, 1, u.to_vec()).mul(&Matrix::new(1, d, u.to_vec()));
    let ki2 = ki.mul(&ki);
    let g2 = gamma.mul(gamma);
    let bias = a.mul(&ki2).mul(&g2).mul(&uu).trace();
    let t = a2.mul(&ki).mul(&gi).trace();
    let denom = 1.0 - lr / batch * t;
    if denom <= 0.0 {
        return Err(TheoryError::Divergent(format!(
            "1 − (λ/S) Tr[A²K⁻¹G⁻¹] = {denom:.4}"
        )));
    }
    let kappa = t / denom;
    let r = a2
        .mul(a)
        .mul(&ki2)
        .mul(&ki)
        .mul(&g2)
        .mul(&gi)
        .mul(&uu)
        .trace()
        / denom;
    Ok(lr / (2.0 * batch) * (bias * kappa + r) + 0.5 * bias)
}

/// Thm. 6: Tr[ÂΣ] = max{0, (λσ²/S)(1 − 1/α) κ̂} with κ̂ = Tr[Ĝ⁻¹Â]/(1 − (λ/S) Tr[Ĝ⁻¹Â]) and
/// Ĝ = 2I − λ(1 − 1/S)Â, for α = N/D (as written in SPEC §4).
///
/// # Returns
/// Tr[ÂΣ], or [`TheoryError::Divergent`] when Ĝ is singular or the denominator of κ̂ is not
/// positive.
pub fn thm6_trace(
    a_hat: &Matrix,
    lr: f64,
    sigma2: f64,
    batch: f64,
    alpha: f64,
) -> Result<f64, TheoryError> {
    thm6_form(a_hat, lr, sigma2, batch, alpha, 1.0 - 1.0 / batch)
}

/// Thm. 6 with the Gaussian fourth moment kept: the same form with Ĝ = 2I − λ(1 + 1/S)Â.
///
/// Thm. 6 replaces the per-sample term (1/N)Σ_i (x_iᵀΣx_i) x_i x_iᵀ of the noise by
/// Tr[ÂΣ]Â. For x ~ N(0, A) its mean is 2AΣA + Tr[AΣ]A; keeping 2ÂΣÂ adds 2λ²/S · ÂΣÂ to the
/// noise, which turns −1/S into +1/S ([`finite_data_trace`](crate::finite_data_trace) solves
/// the same equation without either replacement).
///
/// # Returns
/// Tr[ÂΣ], or [`TheoryError::Divergent`] as for [`thm6_trace`].
pub fn thm6_gaussian_trace(
    a_hat: &Matrix,
    lr: f64,
    sigma2: f64,
    batch: f64,
    alpha: f64,
) -> Result<f64, TheoryError> {
    thm6_form(a_hat, lr, sigma2, batch, alpha, 1.0 + 1.0 / batch)
}

/// (λσ²/S)(1 − 1/α) κ̂, κ̂ = t/(1 − (λ/S)t), t = Tr[Ĝ⁻¹Â], Ĝ = 2I − λcÂ.
fn thm6_form(
    a_hat: &Matrix,
    lr: f64,
    sigma2: f64,
    batch: f64,
    alpha: f64,
    c: f64,
) -> Result<f64, TheoryError> {
    let d = a_hat.rows;
    let g = Matrix::identity(d).scale(2.0).add(&a_hat.scale(-lr * c));
    let gi = g
        .inverse()
        .ok_or_else(|| TheoryError::Divergent("Ĝ is singular".into()))?;
    let t = gi.mul(a_hat).trace();
    let denom = 1.0 - lr / batch * t;
    if denom <= 0.0 {
        return Err(TheoryError::Divergent(format!(
            "1 − (λ/S) Tr[Ĝ⁻¹Â] = {denom:.4}"
        )));
    }
    Ok((lr * sigma2 / batch * (1.0 - 1.0 / alpha) * t / denom).max(0.0))
}

/// The discrete-time Hessian approximation of Thm. 6's quantity: Thm. 1 with Λ = λI and
/// C ≈ (σ²/S) Â gives Σ = (λσ²/S)(2I − λÂ)⁻¹ on the range of Â, so
/// Tr[ÂΣ] = (λσ²/S) Tr[Â(2I − λÂ)⁻¹], whatever α.
pub fn hessian_approximation_trace(
    a_hat: &Matrix,
    lr: f64,
    sigma2: f64,
    batch: f64,
) -> Result<f64, TheoryError> {
    let d = a_hat.rows;
    let g = Matrix::identity(d).scale(2.0).add(&a_hat.scale(-lr));
    let gi = g
        .inverse()
        .ok_or_else(|| TheoryError::Divergent("2I − λÂ is singular".into()))?;
    if (0..d).any(|i| gi.at(i, i) <= 0.0) {
        return Err(TheoryError::Divergent(
            "λ Â has an eigenvalue above 2".into(),
        ));
    }
    Ok(lr * sigma2 / batch * a_hat.mul(&gi).trace())
}

/// The continuous-time approximation of Thm. 6's quantity: Σ = λσ²/(2S) I, so
/// Tr[ÂΣ] = λσ²/(2S) Tr Â.
pub fn continuous_time_trace(a_hat: &Matrix, lr: f64, sigma2: f64, batch: f64) -> f64 {
    lr * sigma2 / (2.0 * batch) * a_hat.trace()
}

/// Thm. 4's test loss without SGD's noise (GD, or the Hessian approximation with noiseless
/// labels, whose C vanishes): the bias ½ Tr[AK⁻²Γ²U] alone, minimal at Γ = 0.
pub fn noiseless_test_loss(a: &Matrix, gamma: &Matrix, u: &[f64]) -> Result<f64, TheoryError> {
    let d = a.rows;
    let k = a.add(gamma);
    let ki = k
        .inverse()
        .ok_or_else(|| TheoryError::Divergent("A + Γ is singular".into()))?;
    let uu = Matrix::new(d, 1, u.to_vec()).mul(&Matrix::new(1, d, u.to_vec()));
    Ok(0.5 * a.mul(&ki).mul(&ki).mul(&gamma.mul(gamma)).mul(&uu).trace())
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use rand_distr::{Distribution, StandardNormal};

    use super::*;

    /// 1-d simulation with fresh samples and noiseless labels: the stationary E[½a(w − u)²]
    /// matches Thm. 4 within 4 standard errors, for positive and negative weight decay.
    #[test]
    fn thm4_matches_simulation_in_one_dimension() {
        let (a, u, lr, s) = (1.0, 1.0, 0.6, 2usize);
        for gamma in [0.2, -0.1] {
            let want = thm4_test_loss(
                &Matrix::scalar(a),
                &Matrix::scalar(gamma),
                &[u],
                lr,
                s as f64,
            )
            .unwrap();
            let mut rng = ChaCha8Rng::seed_from_u64(5);
            let mut w = u;
            let (m, se) = crate::testing::stationary_mean(2000, 400_000, 40, || {
                let mut g = gamma * w;
                for _ in 0..s {
                    let x: f64 = StandardNormal.sample(&mut rng);
                    let x = x * a.sqrt();
                    g += x * (w * x - u * x) / s as f64;
                }
                w -= lr * g;
                0.5 * a * (w - u).powi(2)
            });
            assert!(
                (m - want).abs() < 4.0 * se,
                "γ {gamma}: simulated {m} ± {se}, Thm. 4 {want}"
            );
        }
    }

    /// The Hessian approximation of Thm. 6 is the D²×D² fluctuation equation's solution with
    /// C = (σ²/S) Â, and the noiseless loss is Thm. 4 at λ → 0.
    #[test]
    fn baselines_agree_with_the_general_forms() {
        let a = Matrix::diagonal(&[1.0, 0.5, 0.25]);
        let sigma =
            crate::hessian_approximation_sigma(&a, &Matrix::identity(3).scale(0.4), 0.0, 0.8, 4.0)
                .unwrap();
        let want = a.mul(&sigma).trace();
        let got = hessian_approximation_trace(&a, 0.4, 0.8, 4.0).unwrap();
        assert!((got - want).abs() < 1e-12 * want, "{got} vs {want}");
        let cont = crate::continuous_time_sigma(3, 0.4, 0.0, 0.8, 4.0);
        assert!((continuous_time_trace(&a, 0.4, 0.8, 4.0) - a.mul(&cont).trace()).abs() < 1e-15);
        let g = Matrix::scalar(-0.3);
        let bias = noiseless_test_loss(&Matrix::scalar(1.0), &g, &[1.0]).unwrap();
        let small_lr = thm4_test_loss(&Matrix::scalar(1.0), &g, &[1.0], 1e-9, 2.0).unwrap();
        assert!((bias - small_lr).abs() < 1e-8, "{bias} vs {small_lr}");
    }

    #[test]
    fn thm6_vanishes_when_overparameterized() {
        let a = Matrix::diagonal(&[1.0, 0.5, 0.25]);
        assert_eq!(thm6_trace(&a, 0.5, 1.0, 8.0, 0.5).unwrap(), 0.0);
        let under = thm6_trace(&a, 0.5, 1.0, 8.0, 4.0).unwrap();
        assert!(under > 0.0);
        // It grows with α toward the infinite-data value (1 − 1/α → 1).
        assert!(thm6_trace(&a, 0.5, 1.0, 8.0, 100.0).unwrap() > under);
    }
}
