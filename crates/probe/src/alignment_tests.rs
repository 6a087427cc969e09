//! Tests of the alignment measures against dense f64 references (`testing.rs`).

// Dense references index matrices by (i, j); iterator chains would hide the formulas.
#![allow(clippy::needless_range_loop)]

use crate::testing::*;

#[test]
fn alignment_matches_its_dense_formulas() {
    for p in [tanh_mse(), relu_ce()] {
        let d = p.net.dim();
        let gf = dense(&p.ggn());
        let (sigma, _) = p.dense_sigma_and_fisher();
        let loss = p.net.loss(&p.theta, &p.data);
        let fro: f64 = gf.iter().map(|v| v * v).sum();
        let want = trace_of_product(&sigma, &gf, d) / (2.0 * loss * fro);
        let noise = GradientNoise::of(&p.net, &p.theta, &p.data);
        let got = average_alignment(&p.net, &p.theta, &p.data, &noise, TraceMethod::Exact, 16, 0);
        assert!(
            rel(got.mu, want) < 1e-10,
            "{}: μ {} vs {want}",
            p.net.name,
            got.mu
        );
        // The sample-space computation gives the same numbers exactly.
        let ggn = p.net.ggn_factors(&p.theta, &p.data);
        let space = SampleSpace::new(&noise, &ggn, loss);
        let gram = average_alignment_gram(&space);
        assert!(rel(gram.mu, want) < 1e-10, "gram μ {} vs {want}", gram.mu);
        assert!(rel(gram.gf_frobenius_sq, fro) < 1e-10);
        assert!(rel(gram.trace_sigma_gf, got.trace_sigma_gf) < 1e-10);
        let (est, se) = frobenius_sq(&p.ggn(), TraceMethod::Hutchinson { probes: 300 }, 1);
        assert!((est - fro).abs() < 4.0 * se, "‖G_F‖² {est} ± {se} vs {fro}");
        // Directional alignment along the top Hessian eigenvectors and random directions.
        let top = lanczos(
            &p.hessian(0.0),
            LanczosConfig {
                k: 3,
                steps: 80,
                seed: 0,
                tol: 0.0,
            },
        );
        let rand = alignment::random_unit_directions(3, d, 8, &cpu(), DType::F64);
        for v in [top.vectors, rand] {
            let got = directional_alignment(&p.ggn(), &noise, loss, &v);
            let in_sample_space = directional_alignment_gram(&space, &v);
            let vh = to_host(v);
            for (j, g) in got.iter().enumerate() {
                let x = &vh[j * d..(j + 1) * d];
                let quad = |m: &[f64]| -> f64 {
                    (0..d)
                        .flat_map(|a| (0..d).map(move |b| (a, b)))
                        .map(|(a, b)| x[a] * m[a * d + b] * x[b])
                        .sum()
                };
                let want = quad(&sigma) / (2.0 * loss * quad(&gf));
                assert!(rel(*g, want) < 1e-10, "g(v{j}) {g} vs {want}");
                let s = in_sample_space[j];
                assert!(rel(s, want) < 1e-10, "sample-space g(v{j}) {s} vs {want}");
            }
        }
    }
}
