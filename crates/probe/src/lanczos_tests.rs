//! Tests of Lanczos against dense f64 references (`testing.rs`).

// Dense references index matrices by (i, j); iterator chains would hide the formulas.
#![allow(clippy::needless_range_loop)]

use crate::testing::*;

#[test]
fn lanczos_top_k_matches_the_dense_spectrum() {
    for p in [tanh_mse(), relu_ce()] {
        let h = p.hessian(0.0);
        let d = h.dim();
        let (vals, vecs) = symmetric_eigen(&dense(&h), d);
        let k = 5;
        let got = lanczos(
            &h,
            LanczosConfig {
                k,
                steps: 80,
                seed: 3,
                tol: 0.0,
            },
        );
        let u = to_host(got.vectors.clone());
        for j in 0..k {
            assert!(
                rel(got.values[j], vals[j]) < 1e-6,
                "{} λ{j}: {} vs {}",
                p.net.name,
                got.values[j],
                vals[j]
            );
            let o = overlap(&u[j * d..(j + 1) * d], &vecs[j * d..(j + 1) * d]);
            assert!(o > 1.0 - 1e-6, "{} u{j}: overlap {o}", p.net.name);
            assert!(
                got.residuals[j] < 1e-5 * vals[0].abs(),
                "residual {}",
                got.residuals[j]
            );
        }
    }
}

/// The host-memory recurrence (what ndarray runs) and the device one (what GPUs run) build
/// the same tridiagonal matrix and basis.
#[test]
fn lanczos_host_and_device_forms_agree() {
    for p in [tanh_mse(), relu_ce()] {
        let h = p.hessian(0.0);
        let d = p.net.dim();
        let start = crate::linalg::random_directions(
            1,
            d,
            crate::linalg::ProbeKind::Gaussian,
            3,
            &cpu(),
            DType::F64,
        );
        let a = crate::lanczos::lanczos_in_host_memory(&h, start.clone(), 12, None);
        let b = crate::lanczos::lanczos_on_device(&h, start, 12, None);
        assert_eq!(a.alpha.len(), b.alpha.len());
        for (x, y) in a
            .alpha
            .iter()
            .zip(&b.alpha)
            .chain(a.beta.iter().zip(&b.beta))
        {
            assert!(rel(*x, *y) < 1e-9, "{}: {x} vs {y}", p.net.name);
        }
        let diff = to_host((a.basis.to_tensor() - b.basis.to_tensor()).abs().max())[0];
        assert!(diff < 1e-9, "{}: bases differ by {diff}", p.net.name);
    }
}

#[test]
fn lanczos_with_weight_decay_shifts_every_eigenvalue() {
    let p = tanh_mse();
    let cfg = LanczosConfig {
        k: 3,
        steps: 80,
        seed: 1,
        tol: 0.0,
    };
    let plain = lanczos(&p.hessian(0.0), cfg);
    let shifted = lanczos(&p.hessian(-0.05), cfg);
    for (a, b) in plain.values.iter().zip(&shifted.values) {
        assert!((a - 0.05 - b).abs() < 1e-8, "{a} − 0.05 vs {b}");
    }
}

#[test]
fn lanczos_stops_at_its_residual_tolerance() {
    for p in [tanh_mse(), relu_ce()] {
        let h = p.hessian(0.0);
        let d = h.dim();
        let (vals, _) = symmetric_eigen(&dense(&h), d);
        let cfg = LanczosConfig {
            k: 3,
            steps: d,
            seed: 4,
            tol: 1e-6,
        };
        let got = lanczos(&h, cfg);
        assert!(got.matvecs < d, "{}: stopped early", p.net.name);
        let top = vals[0].abs();
        for (i, r) in got.residuals.iter().enumerate() {
            assert!(
                *r <= 1e-6 * top * (1.0 + 1e-9),
                "{}: residual {r}",
                p.net.name
            );
            // A Ritz value is within its residual of an eigenvalue (Bauer–Fike).
            assert!(
                (got.values[i] - vals[i]).abs() <= r + 1e-9 * top,
                "{}: {} vs {}",
                p.net.name,
                got.values[i],
                vals[i]
            );
        }
        // Warm-started from its own eigenvectors, it converges in fewer steps.
        let start = got.vectors.clone().sum_dim(0);
        let warm = lanczos_from(&h, start, cfg);
        assert!(
            warm.matvecs < got.matvecs,
            "{}: {} steps warm, {} cold",
            p.net.name,
            warm.matvecs,
            got.matvecs
        );
        for (a, b) in warm.values.iter().zip(&vals) {
            assert!((a - b).abs() <= 1e-5 * top, "{}: {a} vs {b}", p.net.name);
        }
    }
}
