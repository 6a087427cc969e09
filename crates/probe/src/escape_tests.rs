//! Tests of Tr(HΣ) and the escape indicator against dense f64 references (`testing.rs`).

// Dense references index matrices by (i, j); iterator chains would hide the formulas.
#![allow(clippy::needless_range_loop)]

use crate::testing::*;

/// In f32 the exact Tr(HΣ₁) does not drift with the chunk size: each sample's quadratic form
/// is summed on the host in f64 (a device sum over chunk × D entries lost digits).
#[test]
fn f32_trace_h_sigma_does_not_depend_on_the_chunk() {
    let args = (ActivationKind::Tanh, Loss::Mse, vec![30, 200, 10], 120, 3);
    let f64p = problem_in(
        Precision::F64,
        args.0,
        args.1,
        args.2.clone(),
        args.3,
        args.4,
    );
    let f32p = problem_in(Precision::F32, args.0, args.1, args.2, args.3, args.4);
    let exact = |p: &Problem, chunk: usize| {
        let noise = GradientNoise::of(&p.net, &p.theta, &p.data);
        trace_with_covariance(
            &p.hessian(0.0),
            &p.net,
            &p.theta,
            &p.data,
            noise.mean(),
            chunk,
        )
    };
    let want = exact(&f64p, 7);
    for chunk in [1, 7, 120] {
        let got = exact(&f32p, chunk);
        assert!(rel(got, want) < 2e-6, "f32, chunk {chunk}: {got} vs {want}");
    }
}

#[test]
fn trace_h_sigma_is_exact() {
    for p in [tanh_mse(), relu_ce()] {
        let d = p.net.dim();
        let h = dense(&p.hessian(0.0));
        let (sigma, _) = p.dense_sigma_and_fisher();
        let want = trace_of_product(&h, &sigma, d);
        let noise = GradientNoise::of(&p.net, &p.theta, &p.data);
        let got =
            trace_with_covariance(&p.hessian(0.0), &p.net, &p.theta, &p.data, noise.mean(), 7);
        assert!(rel(got, want) < 1e-10, "{}: {got} vs {want}", p.net.name);

        let ind = escape_indicator(
            &p.net,
            &p.theta,
            &p.data,
            &noise,
            0.0,
            IndicatorConfig {
                chunk: 16,
                ..Default::default()
            },
        );
        let tr_h: f64 = (0..d).map(|i| h[i * d + i]).sum();
        let tr_s: f64 = (0..d).map(|i| sigma[i * d + i]).sum();
        assert!(rel(ind.trace_h_sigma, want) < 1e-10);
        assert!(rel(ind.isotropic, tr_h * tr_s / d as f64) < 1e-10);
        assert!(rel(ind.ratio, want / (tr_h * tr_s / d as f64)) < 1e-10);
    }
}

#[test]
fn sample_space_trace_h_sigma_is_exact_and_its_estimates_are_honest() {
    for p in [tanh_mse(), relu_ce()] {
        let d = p.net.dim();
        let h = dense(&p.hessian(0.0));
        let (sigma, _) = p.dense_sigma_and_fisher();
        let want = trace_of_product(&h, &sigma, d);
        let noise = GradientNoise::of(&p.net, &p.theta, &p.data);
        let hess = p.hessian(0.0);
        let b = SampleSandwich {
            inner: &hess,
            noise: &noise,
        };
        assert_eq!(b.dim(), p.data.n);
        // B = (1/N) G_c H G_cᵀ is symmetric with trace Tr(HΣ₁).
        let dense_b = dense(&b);
        let n = p.data.n;
        for i in 0..n {
            for j in 0..n {
                assert!((dense_b[i * n + j] - dense_b[j * n + i]).abs() < 1e-10);
            }
        }
        assert!(rel(exact_trace(&b).value, want) < 1e-10, "{}", p.net.name);
        // Unbiased with an honest standard error: over 30 seeds every estimate lies within
        // 4 s.e. of the exact value, and the mean squared z-score is near 1. (Hutch++'s
        // error is that of its Hutchinson remainder alone, from a third of the products: too
        // few for a z-score this test could hold.)
        {
            let method = TraceMethod::Hutchinson { probes: 50 };
            let z: Vec<f64> = (0..30)
                .map(|seed| {
                    let e = trace_times_covariance(
                        &hess,
                        &p.net,
                        &p.theta,
                        &p.data,
                        &noise,
                        IndicatorConfig {
                            trace_h_sigma: method,
                            seed,
                            ..Default::default()
                        },
                    );
                    assert!(e.std_error > 0.0);
                    (e.value - want) / e.std_error
                })
                .collect();
            let worst = z.iter().fold(0f64, |m, v| m.max(v.abs()));
            let msz = z.iter().map(|v| v * v).sum::<f64>() / z.len() as f64;
            assert!(worst < 4.0, "{} {method:?}: z = {z:?}", p.net.name);
            assert!(
                (0.3..3.0).contains(&msz),
                "{} {method:?}: mean z² = {msz}",
                p.net.name
            );
        }
    }
}
