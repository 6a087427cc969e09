//! The stationary fluctuations of SGD on linear regression (SPEC §4): ℓ = ½(wᵀx − y)²,
//! x ~ N(0, A), y = uᵀx + ε with Var ε = σ², batch S, learning rate λ or a matrix Λ commuting
//! with A, momentum μ. H = A.

use crate::matrix::Matrix;

/// Why a closed form has no finite answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TheoryError {
    /// The dynamics diverge: no stationary distribution (the linear system is singular, or a
    /// Thm. 2 denominator is not positive).
    #[error("no stationary distribution: {0}")]
    Divergent(String),
}

/// The noise C on the right of Thm. 1.
#[derive(Debug, Clone, PartialEq)]
pub enum NoiseModel {
    /// A given C, independent of Σ (the Hessian approximation C = (σ²/S) H, for instance).
    Fixed(Matrix),
    /// Lemma 1's label noise C = (1/S)(AΣA + Tr[AΣ] A + σ² A), which depends on Σ.
    LabelNoise {
        /// σ², the label-noise variance.
        sigma2: f64,
        /// S, the batch size.
        batch: f64,
    },
}

/// Lemma 1: C = (1/S)(AΣA + Tr[AΣ] A + σ² A).
pub fn label_noise_c(a: &Matrix, sigma: &Matrix, sigma2: f64, batch: f64) -> Matrix {
    let asa = a.mul(sigma).mul(a);
    let tr = a.mul(sigma).trace();
    asa.add(&a.scale(tr + sigma2)).scale(1.0 / batch)
}

/// Thm. 1 solved for Σ as a D²×D² linear system:
/// (1−μ)(ΛHΣ + ΣHΛ) − ((1+μ²)/(1−μ²)) ΛHΣHΛ + (μ/(1−μ²))(ΛHΛHΣ + ΣHΛHΛ) = ΛCΛ,
/// with C given or Lemma 1's (then its Σ-dependent part moves to the left). For small D only
/// (the system has D⁴ entries).
pub fn solve_fluctuation(
    h: &Matrix,
    lambda: &Matrix,
    mu: f64,
    noise: &NoiseModel,
) -> Result<Matrix, TheoryError> {
    let d = h.rows;
    let lh = lambda.mul(h);
    let hl = h.mul(lambda);
    let lhlh = lh.mul(&lh);
    let hlhl = hl.mul(&hl);
    let c1 = (1.0 + mu * mu) / (1.0 - mu * mu);
    let c2 = mu / (1.0 - mu * mu);
    // The left side as a linear map of Σ, applied to the basis E_pq, column p·D + q.
    let lhs_of = |s: &Matrix| -> Matrix {
        let mut out = lh.mul(s).add(&s.mul(&hl)).scale(1.0 - mu);
        out = out.add(&lh.mul(s).mul(&hl).scale(-c1));
        out = out.add(&lhlh.mul(s).add(&s.mul(&hlhl)).scale(c2));
        if let NoiseModel::LabelNoise { sigma2: _, batch } = noise {
            // −Λ (1/S)(AΣA + Tr[AΣ] A) Λ, with A = H.
            let c = label_noise_c(h, s, 0.0, *batch);
            out = out.add(&lambda.mul(&c).mul(lambda).scale(-1.0));
        }
        out
    };
    let n = d * d;
    let mut system = Matrix::zeros(n, n);
    for col in 0..n {
        let mut e = Matrix::zeros(d, d);
        e.data[col] = 1.0;
        let image = lhs_of(&e);
        for row in 0..n {
            system.data[row * n + col] = image.data[row];
        }
    }
    let c0 = match noise {
        NoiseModel::Fixed(c) => c.clone(),
        NoiseModel::LabelNoise { sigma2, batch } => h.scale(sigma2 / batch),
    };
    let rhs = lambda.mul(&c0).mul(lambda);
    let x = system
        .solve(&rhs.data)
        .ok_or_else(|| TheoryError::Divergent("the fluctuation equation is singular".into()))?;
    let sigma = Matrix::new(d, d, x);
    // Symmetrize away rounding; a stationary covariance must be positive semi-definite.
    let sigma = sigma.add(&sigma.transpose()).scale(0.5);
    if (0..d).any(|i| sigma.at(i, i) < 0.0) {
        return Err(TheoryError::Divergent(
            "the solution has a negative variance".into(),
        ));
    }
    Ok(sigma)
}

/// G_μ = 2(1−μ) I − ((1−μ)/(1+μ) + 1/S) ΛA and the trace t = Tr[ΛA G_μ⁻¹].
fn g_mu(a: &Matrix, lambda: &Matrix, mu: f64, batch: f64) -> Result<(Matrix, f64), TheoryError> {
    let d = a.rows;
    let la = lambda.mul(a);
    let g = Matrix::identity(d)
        .scale(2.0 * (1.0 - mu))
        .add(&la.scale(-((1.0 - mu) / (1.0 + mu) + 1.0 / batch)));
    let gi = g
        .inverse()
        .ok_or_else(|| TheoryError::Divergent("G_μ is singular".into()))?;
    let t = la.mul(&gi).trace();
    Ok((gi, t))
}

/// Thm. 2: Σ = (σ²/S)(1 + κ_μ/S) Λ G_μ⁻¹ with κ_μ = Tr[ΛAG_μ⁻¹] / (1 − Tr[ΛAG_μ⁻¹]/S), for Λ
/// commuting with A.
pub fn thm2_sigma(
    a: &Matrix,
    lambda: &Matrix,
    mu: f64,
    sigma2: f64,
    batch: f64,
) -> Result<Matrix, TheoryError> {
    let (gi, _, kappa) = stationary_kappa(a, lambda, mu, batch)?;
    Ok(lambda
        .mul(&gi)
        .scale(sigma2 / batch * (1.0 + kappa / batch)))
}

/// G_μ⁻¹, t = Tr[ΛAG_μ⁻¹] and κ_μ = t/(1 − t/S), or why Thms. 2–3 have no stationary answer
/// (G_μ not positive definite, or 1 − t/S ≤ 0).
fn stationary_kappa(
    a: &Matrix,
    lambda: &Matrix,
    mu: f64,
    batch: f64,
) -> Result<(Matrix, f64, f64), TheoryError> {
    let (gi, t) = g_mu(a, lambda, mu, batch)?;
    let denom = 1.0 - t / batch;
    if denom <= 0.0 || (0..a.rows).any(|i| gi.at(i, i) <= 0.0) {
        return Err(TheoryError::Divergent(format!(
            "1 − Tr[ΛAG⁻¹]/S = {denom:.4}"
        )));
    }
    Ok((gi, t, t / denom))
}

/// Thm. 3: C = (σ²/S) A + (σ²/S²)(1 + κ_μ/S)(ΛAG_μ⁻¹ + Tr[ΛAG_μ⁻¹] I) A.
pub fn thm3_c(
    a: &Matrix,
    lambda: &Matrix,
    mu: f64,
    sigma2: f64,
    batch: f64,
) -> Result<Matrix, TheoryError> {
    let (gi, t, kappa) = stationary_kappa(a, lambda, mu, batch)?;
    let inner = lambda
        .mul(a)
        .mul(&gi)
        .add(&Matrix::identity(a.rows).scale(t));
    Ok(a.scale(sigma2 / batch).add(
        &inner
            .mul(a)
            .scale(sigma2 / (batch * batch) * (1.0 + kappa / batch)),
    ))
}

/// The discrete-time Hessian approximation: Thm. 1 with C ≈ (σ²/S) H.
pub fn hessian_approximation_sigma(
    a: &Matrix,
    lambda: &Matrix,
    mu: f64,
    sigma2: f64,
    batch: f64,
) -> Result<Matrix, TheoryError> {
    solve_fluctuation(a, lambda, mu, &NoiseModel::Fixed(a.scale(sigma2 / batch)))
}

/// The continuous-time approximation Σ ≈ λσ²/(2S(1−μ)) I: heavy-ball momentum μ amounts to the
/// rate λ/(1−μ) in the continuous-time limit (λσ²/(2S) I without momentum).
pub fn continuous_time_sigma(dim: usize, lr: f64, mu: f64, sigma2: f64, batch: f64) -> Matrix {
    Matrix::identity(dim).scale(lr * sigma2 / (2.0 * batch * (1.0 - mu)))
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use rand_distr::{Distribution, StandardNormal};

    use super::*;

    fn spd2() -> Matrix {
        // Eigenvalues 1 and 0.5 (SPEC §5.6's D = 2 setting), rotated by 30°.
        let (s, c) = (
            std::f64::consts::FRAC_PI_6.sin(),
            std::f64::consts::FRAC_PI_6.cos(),
        );
        let r = Matrix::new(2, 2, vec![c, -s, s, c]);
        r.mul(&Matrix::diagonal(&[1.0, 0.5])).mul(&r.transpose())
    }

    /// Thm. 2 is the solution of Thm. 1's linear system with Lemma 1's noise, for Λ = λI with
    /// and without momentum; Thm. 3 is Lemma 1's C at that Σ.
    #[test]
    fn thm2_and_thm3_solve_the_fluctuation_equation() {
        let a = spd2();
        for (lr, mu, batch) in [
            (1.5, 0.0, 10.0),
            (1.5, 0.0, 50.0),
            (0.5, 0.5, 4.0),
            (0.3, 0.7, 8.0),
        ] {
            let lambda = Matrix::identity(2).scale(lr);
            let general = solve_fluctuation(
                &a,
                &lambda,
                mu,
                &NoiseModel::LabelNoise { sigma2: 0.7, batch },
            );
            let closed = thm2_sigma(&a, &lambda, mu, 0.7, batch);
            let (general, closed) = (general.unwrap(), closed.unwrap());
            let scale = closed.data.iter().fold(0f64, |m, v| m.max(v.abs()));
            assert!(
                general.max_abs_diff(&closed) < 1e-10 * scale,
                "λ {lr} μ {mu} S {batch}: {general:?} vs {closed:?}"
            );
            let c = thm3_c(&a, &lambda, mu, 0.7, batch).unwrap();
            let lemma = label_noise_c(&a, &closed, 0.7, batch);
            assert!(
                c.max_abs_diff(&lemma) < 1e-10 * scale.max(1.0),
                "Thm. 3 vs Lemma 1"
            );
        }
    }

    /// Past the stability boundary both say so: Thm. 2's denominator turns negative and the
    /// linear system's solution is no covariance.
    #[test]
    fn divergence_is_reported_by_both() {
        let lambda = Matrix::identity(2).scale(0.2);
        let noise = NoiseModel::LabelNoise {
            sigma2: 0.7,
            batch: 2.0,
        };
        assert!(thm2_sigma(&spd2(), &lambda, 0.9, 0.7, 2.0).is_err());
        assert!(solve_fluctuation(&spd2(), &lambda, 0.9, &noise).is_err());
    }

    #[test]
    fn one_dimensional_closed_form() {
        // μ = 0, D = 1: Σ = λσ²/(S(2 − λa − 2λa/S)).
        for (a, lr, s) in [(1.5, 1.0, 1.0), (1.0, 0.5, 1.0), (1.0, 0.3, 10.0)] {
            let got = thm2_sigma(&Matrix::scalar(a), &Matrix::scalar(lr), 0.0, 1.0, s);
            let denom = 2.0 - lr * a - 2.0 * lr * a / s;
            match got {
                Ok(m) => assert!((m.at(0, 0) - lr / (s * denom)).abs() < 1e-12),
                Err(_) => assert!(denom <= 0.0, "a {a} λ {lr} S {s}"),
            }
        }
        // a = 1.5, λ = 1, S = 1 (SPEC §5.6) diverges: 2 − 1.5 − 3 < 0.
        assert!(thm2_sigma(&Matrix::scalar(1.5), &Matrix::scalar(1.0), 0.0, 1.0, 1.0).is_err());
        assert!(thm3_c(&Matrix::scalar(1.5), &Matrix::scalar(1.0), 0.0, 1.0, 1.0).is_err());
    }

    /// Direct simulation: 1-d SGD with fresh Gaussian samples (the noise is then exactly
    /// Lemma 1's) reaches Thm. 2's variance within 4 standard errors of the batch means.
    #[test]
    fn thm2_matches_simulation_in_one_dimension() {
        let (a, lr, s, sigma2, u) = (1.0, 0.5, 2usize, 1.0, 0.3);
        let want = thm2_sigma(
            &Matrix::scalar(a),
            &Matrix::scalar(lr),
            0.0,
            sigma2,
            s as f64,
        )
        .unwrap()
        .at(0, 0);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut w = u;
        let (m, se) = crate::testing::stationary_mean(1000, 400_000, 40, || {
            let mut g = 0.0;
            for _ in 0..s {
                let x: f64 = StandardNormal.sample(&mut rng);
                let x = x * a.sqrt();
                let eps: f64 = StandardNormal.sample(&mut rng);
                let y = u * x + eps * sigma2.sqrt();
                g += x * (w * x - y) / s as f64;
            }
            w -= lr * g;
            (w - u).powi(2)
        });
        assert!(
            (m - want).abs() < 4.0 * se,
            "simulated {m} ± {se}, Thm. 2 {want}"
        );
        // The Hessian approximations are off here: they ignore the Σ-dependent part of C.
        let hess = hessian_approximation_sigma(
            &Matrix::scalar(a),
            &Matrix::scalar(lr),
            0.0,
            sigma2,
            s as f64,
        )
        .unwrap()
        .at(0, 0);
        let cont = continuous_time_sigma(1, lr, 0.0, sigma2, s as f64).at(0, 0);
        assert!(
            (hess - m).abs() > 10.0 * se && (cont - m).abs() > 10.0 * se,
            "{hess} {cont} vs {m}"
        );
    }
}
