//! Statistics of trajectories: the loss variance over a window of steps and the tail index.

/// Mean and standard error of the mean of independent values: (1/m) Σ v and √(s²/m), with
/// s² the unbiased sample variance. The one such helper of the workspace.
///
/// # Returns
/// The mean (NaN for no values) and the standard error, `None` for fewer than two values
/// (callers choose what one value's error is: 0, ∞ or missing).
pub fn mean_and_se(values: &[f64]) -> (f64, Option<f64>) {
    let m = values.len() as f64;
    let mean = values.iter().sum::<f64>() / m;
    if values.len() < 2 {
        return (mean, None);
    }
    let var = values.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (m - 1.0);
    (mean, Some((var / m).sqrt()))
}

/// The unbiased sample variance of `values` (NaN for fewer than two values).
pub fn window_variance(values: &[f64]) -> f64 {
    let m = values.len() as f64;
    if values.len() < 2 {
        return f64::NAN;
    }
    let mean = values.iter().sum::<f64>() / m;
    values.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (m - 1.0)
}

/// A tail-index estimate.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TailIndex {
    /// α̂, the estimated tail index (P(|X| > x) ~ x^{−α}).
    pub alpha: f64,
    /// Its asymptotic standard error α̂ / √k.
    pub std_error: f64,
    /// Order statistics used, k.
    pub k: usize,
    /// The tail fraction k / n asked for.
    pub fraction: f64,
}

/// Hill's estimator on |x|: with X_(1) ≥ … ≥ X_(n) the sorted magnitudes and k = ⌈fraction·n⌉,
/// α̂ = k / Σ_{i≤k} ln(X_(i) / X_(k+1)). `None` with fewer than two usable values.
pub fn hill_tail_index(samples: &[f64], fraction: f64) -> Option<TailIndex> {
    let mut x: Vec<f64> = samples
        .iter()
        .map(|v| v.abs())
        .filter(|v| v.is_finite() && *v > 0.0)
        .collect();
    let n = x.len();
    if n < 3 {
        return None;
    }
    x.sort_by(|a, b| b.total_cmp(a));
    let k = ((fraction * n as f64).ceil() as usize).clamp(1, n - 1);
    let threshold = x[k];
    let s: f64 = x[..k].iter().map(|v| (v / threshold).ln()).sum();
    if s <= 0.0 {
        return None;
    }
    let alpha = k as f64 / s;
    Some(TailIndex {
        alpha,
        std_error: alpha / (k as f64).sqrt(),
        k,
        fraction,
    })
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::distr::Distribution;
    use rand_chacha::ChaCha8Rng;

    use super::*;

    #[test]
    fn variance_of_a_known_window() {
        assert!((window_variance(&[1.0, 2.0, 3.0, 4.0]) - 5.0 / 3.0).abs() < 1e-15);
        assert!(window_variance(&[1.0]).is_nan());
    }

    /// Pareto samples with index α = 3 (X = U^{−1/α}): Hill recovers α within 4 standard errors.
    #[test]
    fn hill_recovers_a_pareto_index() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let u = rand::distr::Uniform::new(0.0f64, 1.0).unwrap();
        let x: Vec<f64> = (0..20_000)
            .map(|_| (1.0 - u.sample(&mut rng)).powf(-1.0 / 3.0))
            .collect();
        let t = hill_tail_index(&x, 0.1).unwrap();
        assert!((t.alpha - 3.0).abs() < 4.0 * t.std_error, "{t:?}");
        assert_eq!(t.k, 2000);
    }
}
