//! Tests of every surrogate: its draws have the covariance C, with Tr C matched to Tr Σ_m, and its refresh schedule (dense f64 references: `testing.rs`).

// Dense references index matrices by (i, j).
#![allow(clippy::needless_range_loop)]

use crate::testing::*;

#[test]
fn every_surrogate_samples_its_covariance_with_the_matched_trace() {
    let p = small();
    let d = p.net.dim();
    let (_, sigma) = p.dense_sigma();
    let (m, n) = (4, p.data.n);
    let s = minibatch_scale(n, m, Sampling::WithReplacement);
    let target = s * trace(&sigma, d);
    let h = to_host(materialize(&Hessian {
        net: &p.net,
        theta: &p.theta,
        data: &p.data,
        weight_decay: 0.0,
    }));
    let gf = to_host(materialize(&GaussNewton {
        net: &p.net,
        theta: &p.theta,
        data: &p.data,
    }));
    let sigma_m: Vec<f64> = sigma.iter().map(|v| v * s).collect();
    let iso: Vec<f64> = (0..d * d)
        .map(|ij| {
            if ij / d == ij % d {
                target / d as f64
            } else {
                0.0
            }
        })
        .collect();
    let diag: Vec<f64> = (0..d * d)
        .map(|ij| if ij / d == ij % d { sigma_m[ij] } else { 0.0 })
        .collect();
    let tr_gf = trace(&gf, d);
    let ggn: Vec<f64> = gf.iter().map(|v| v * target / tr_gf).collect();
    let cases: Vec<(Dynamic, Vec<f64>, usize)> = vec![
        (Dynamic::IsoDynamic, iso, DRAWS),
        (Dynamic::Diag, diag, DRAWS),
        (
            Dynamic::LowRank(3),
            top_k_matrix(&sigma_m, d, 3, target, false),
            DRAWS,
        ),
        (
            Dynamic::Hessian(3),
            top_k_matrix(&h, d, 3, target, true),
            DRAWS,
        ),
        (
            Dynamic::HessianTop1,
            top_k_matrix(&h, d, 1, target, true),
            DRAWS,
        ),
        // Every GGN draw is a backward pass: fewer draws, the same 5-standard-error bound.
        (Dynamic::Ggn, ggn, 4000),
    ];
    for (dynamic, c, draws) in cases {
        let cfg = NoiseConfig {
            dynamic,
            batch: m,
            sampling: Sampling::WithReplacement,
            eigensolver: EigenSolver::Lanczos {
                steps: 32,
                tol: 0.0,
                warm_start: false,
            },
            ..Default::default()
        };
        let mut sur = Surrogate::new(cfg, 0.0, 1);
        let prepared = sur.prepare(0, &p.net, &p.theta, &p.data).unwrap();
        assert!(
            (prepared.trace_c - target).abs() <= 1e-5 * target,
            "{dynamic}: Tr C {} vs Tr Σ_m {target}",
            prepared.trace_c
        );
        assert!(
            (trace(&c, d) - target).abs() <= 1e-9 * target,
            "{dynamic}: reference trace"
        );
        let mut stream = NoiseStream::new(7);
        let rows = match prepared.covariance.unwrap() {
            Covariance::Shape(shape) => {
                assert!((shape.trace() - target).abs() <= 1e-5 * target);
                to_host(shape.sample_block(&mut stream, draws, &cpu(), DType::F64))
            }
            Covariance::Ggn { .. } => (0..draws)
                .flat_map(|_| {
                    to_host(
                        sur.draw(0, &p.net, &p.theta, &p.data, &mut stream)
                            .unwrap()
                            .xi
                            .unwrap(),
                    )
                })
                .collect(),
        };
        assert_covariance(&dynamic.to_string(), &rows, d, &c);
    }
}

#[test]
fn iso_const_has_the_fixed_sigma_and_lowrank_can_skip_rescaling() {
    let p = small();
    let d = p.net.dim();
    let mut iso = Surrogate::new(
        NoiseConfig {
            dynamic: Dynamic::IsoConst,
            sigma: 0.02,
            ..Default::default()
        },
        0.0,
        0,
    );
    let pr = iso.prepare(0, &p.net, &p.theta, &p.data).unwrap();
    assert!((pr.trace_c - 0.0004 * d as f64).abs() < 1e-15);
    // Without rescaling, lowrank-k's trace is the sum of the top k eigenvalues of Σ_m.
    let (_, sigma) = p.dense_sigma();
    let s = minibatch_scale(p.data.n, 4, Sampling::Shuffle);
    let (vals, _) = symmetric_eigen(&sigma, d);
    let want: f64 = vals[..2].iter().sum::<f64>() * s;
    let mut lr = Surrogate::new(
        NoiseConfig {
            dynamic: Dynamic::LowRank(2),
            batch: 4,
            rescale: false,
            ..Default::default()
        },
        0.0,
        0,
    );
    let pr = lr.prepare(0, &p.net, &p.theta, &p.data).unwrap();
    assert!(
        (pr.trace_c - want).abs() < 1e-9 * want,
        "{} vs {want}",
        pr.trace_c
    );
    assert!(pr.trace_c < s * trace(&sigma, d));
}

#[test]
fn refresh_schedule_and_injection_on_refresh_steps_only() {
    let p = small();
    let mut sur = Surrogate::new(
        NoiseConfig {
            dynamic: Dynamic::LowRank(2),
            batch: 4,
            refresh: 3,
            inject: Injection::RefreshSteps,
            ..Default::default()
        },
        0.0,
        0,
    );
    let mut stream = NoiseStream::new(0);
    let mut theta = p.theta.clone();
    for step in 0..7u64 {
        let draw = sur
            .draw(step, &p.net, &theta, &p.data, &mut stream)
            .unwrap();
        let refresh = step % 3 == 0;
        assert_eq!(draw.xi.is_some(), refresh, "step {step}");
        assert_eq!(draw.trace_sigma_m.is_some(), refresh, "step {step}");
        theta = theta + 1e-2;
    }
    // The moment-matched dynamics follow the same cadence: Tr Σ_m (and diag Σ_m, Tr G_F) at
    // refresh steps only, the noise at every step from the covariance kept in between.
    for dynamic in [Dynamic::IsoDynamic, Dynamic::Diag, Dynamic::Ggn] {
        let mut sur = Surrogate::new(
            NoiseConfig {
                dynamic,
                batch: 4,
                refresh: 3,
                ..Default::default()
            },
            0.0,
            0,
        );
        let mut theta = p.theta.clone();
        let mut traces = Vec::new();
        for step in 0..7u64 {
            let draw = sur
                .draw(step, &p.net, &theta, &p.data, &mut stream)
                .unwrap();
            let refresh = step % 3 == 0;
            assert!(draw.xi.is_some(), "{dynamic} step {step}");
            assert_eq!(
                draw.trace_sigma_m.is_some(),
                refresh,
                "{dynamic} step {step}"
            );
            traces.push(draw.trace_c);
            theta = theta + 1e-2;
        }
        assert_eq!(traces[1], traces[0], "{dynamic}: C kept between refreshes");
        assert_eq!(traces[2], traces[0], "{dynamic}");
        assert_ne!(traces[3], traces[0], "{dynamic}: C re-estimated at step 3");
    }
}
