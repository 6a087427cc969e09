//! Tests of Σ₁ and the minibatch scales against dense f64 references (`testing.rs`).

// Dense references index matrices by (i, j); iterator chains would hide the formulas.
#![allow(clippy::needless_range_loop)]

use crate::testing::*;

#[test]
fn gradient_noise_matches_the_dense_covariance() {
    for p in [tanh_mse(), relu_ce()] {
        let noise = GradientNoise::of(&p.net, &p.theta, &p.data);
        let d = p.net.dim();
        let (sigma, fisher) = p.dense_sigma_and_fisher();
        let tr: f64 = (0..d).map(|i| sigma[i * d + i]).sum();
        assert!(rel(noise.trace(), tr) < 1e-10);
        let diag = to_host(noise.diagonal());
        for i in 0..d {
            assert!((diag[i] - sigma[i * d + i]).abs() < 1e-12 * tr);
        }
        let op = dense(&noise.operator());
        let err = op
            .iter()
            .zip(&sigma)
            .fold(0f64, |m, (a, b)| m.max((a - b).abs()));
        assert!(err < 1e-12 * tr, "Σ₁ operator: {err:e}");
        for (centered, m) in [(true, &sigma), (false, &fisher)] {
            let (vals, vecs) = symmetric_eigen(m, d);
            let k = 4;
            let top = noise.top_k(k, centered);
            let u = to_host(top.vectors.clone());
            for j in 0..k {
                assert!(rel(top.values[j], vals[j]) < 1e-9, "{} λ{j}", p.net.name);
                let o = overlap(&u[j * d..(j + 1) * d], &vecs[j * d..(j + 1) * d]);
                assert!(o > 1.0 - 1e-9, "{} u{j} overlap {o}", p.net.name);
            }
        }
        let fop = dense(&noise.fisher());
        let err = fop
            .iter()
            .zip(&fisher)
            .fold(0f64, |m, (a, b)| m.max((a - b).abs()));
        assert!(err < 1e-12 * tr, "F operator: {err:e}");
    }
}

#[test]
fn sigma_has_rank_at_most_n_minus_one() {
    // N = 5 samples: Σ₁ has rank ≤ 4, so asking for 10 pairs returns at most 4.
    let p = problem(ActivationKind::Tanh, Loss::Mse, vec![6, 10, 3], 5, 3);
    let noise = GradientNoise::of(&p.net, &p.theta, &p.data);
    let top = noise.top_k(10, true);
    assert!(top.values.len() <= 4, "{:?}", top.values);
    let sum: f64 = top.values.iter().sum();
    assert!(
        rel(sum, noise.trace()) < 1e-9,
        "the pairs hold all of Tr Σ₁"
    );
}

#[test]
fn minibatch_scales_of_spec_section_one() {
    use noisescope_data::Sampling;
    assert_eq!(
        minibatch_scale(100, 20, Sampling::WithReplacement),
        1.0 / 20.0
    );
    assert!(
        (minibatch_scale(100, 20, Sampling::WithoutReplacement) - 80.0 / (20.0 * 99.0)).abs()
            < 1e-15
    );
    assert_eq!(minibatch_scale(100, 100, Sampling::WithoutReplacement), 0.0);
}
