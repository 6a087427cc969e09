//! Tests of the trainer: SGD's minibatch noise has covariance Σ_m, a resumed run continues bit for bit, a divergence names its step (dense f64 references: `testing.rs`).

// Dense references index matrices by (i, j).
#![allow(clippy::needless_range_loop)]

use crate::testing::*;

#[test]
fn sgd_minibatch_noise_has_covariance_sigma_m() {
    let p = small();
    let d = p.net.dim();
    let (g, sigma) = p.dense_sigma();
    let n = p.data.n;
    let mean: Vec<f64> = (0..d)
        .map(|i| (0..n).map(|s| g[s * d + i]).sum::<f64>() / n as f64)
        .collect();
    let m = 4;
    for sampling in [Sampling::WithReplacement, Sampling::WithoutReplacement] {
        let scale = minibatch_scale(n, m, sampling);
        let want: Vec<f64> = sigma.iter().map(|v| v * scale).collect();
        let mut sampler = MinibatchSampler::new(n, m, sampling, 11).unwrap();
        let mut rows = Vec::with_capacity(DRAWS * d);
        for _ in 0..DRAWS {
            let batch = sampler.next_batch();
            // g_B − ḡ, with g_B the batch mean of the per-sample gradients.
            rows.extend(
                (0..d)
                    .map(|i| batch.iter().map(|&s| g[s * d + i]).sum::<f64>() / m as f64 - mean[i]),
            );
        }
        assert_covariance(&format!("sgd {sampling:?}"), &rows, d, &want);
    }
    // The batch gradient the trainer uses is the mean of the per-sample gradients.
    let idx = [3, 7, 7, 1];
    let got = to_host(p.net.gradient(&p.theta, &p.data.gather(&idx)).1);
    for i in 0..d {
        let want = idx.iter().map(|&s| g[s * d + i]).sum::<f64>() / 4.0;
        assert!((got[i] - want).abs() < 1e-12);
    }
}

#[test]
fn a_resumed_run_continues_bit_for_bit() {
    let p = small();
    for dynamic in [
        Dynamic::Sgd,
        Dynamic::LowRank(2),
        Dynamic::Diag,
        Dynamic::IsoDynamic,
        Dynamic::Ggn,
        Dynamic::Hessian(2),
    ] {
        // Hessian: warm-started Lanczos with a residual tolerance, whose start is the
        // covariance kept in the state.
        let noise = NoiseConfig {
            dynamic,
            batch: 4,
            refresh: 4,
            eigensolver: EigenSolver::Lanczos {
                steps: 12,
                tol: 1e-3,
                warm_start: true,
            },
            ..Default::default()
        };
        let opt = OptimizerConfig {
            lr: 0.05,
            momentum: 0.5,
            ..Default::default()
        };
        let fresh = || {
            Trainer::new(
                &p.net,
                &p.data,
                noise.clone(),
                opt.clone(),
                p.theta.clone(),
                10,
                3,
            )
            .unwrap()
        };
        let run = |stop: Option<u64>| -> Vec<f64> {
            let mut t = fresh();
            let mut losses = Vec::new();
            for _ in 0..10 {
                if Some(t.steps_done()) == stop {
                    let saved = t.state();
                    t = fresh();
                    t.restore(saved).unwrap();
                }
                losses.push(t.step().unwrap().loss);
            }
            losses.extend(to_host(t.theta().clone()));
            losses
        };
        assert_eq!(run(None), run(Some(6)), "{dynamic}");
    }
}

#[test]
fn divergence_names_the_step() {
    let p = small();
    let opt = OptimizerConfig {
        lr: 1e6,
        ..Default::default()
    };
    let noise = NoiseConfig::default();
    let mut t = Trainer::new(&p.net, &p.data, noise, opt, p.theta.clone(), 100, 0).unwrap();
    let err = (0..100).find_map(|_| t.step().err()).expect("diverges");
    let StepError::Diverged { step, .. } = err else {
        panic!("{err}")
    };
    assert!(err.to_string().contains(&format!("step {step}")));
    assert_eq!(t.steps_done(), step, "θ stays at the last good step");
}
