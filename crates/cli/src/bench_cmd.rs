//! `noisescope bench`: the cost of the curvature products against a gradient on the chosen
//! backend, for the two-layer tanh net 784–d–10 with MSE on N synthetic samples (SPEC §6's
//! inputs: standard normal, labels uniform in 0..9).
//!
//! It times one gradient, one Hessian-vector product, a block of k HVPs and a block of k
//! Gauss-Newton products (medians after a warm-up), checks the HVP against central
//! differences of gradients first — a fast wrong answer fails the command — and reports the
//! ratios the Models issue targets: one HVP ≤ 3 gradients, a block of 20 ≤ 10 HVPs.

use std::time::Instant;

use anyhow::{Result, bail};
use burn::prelude::*;
use indicatif::{ProgressBar, ProgressStyle};
use noisescope_data::{DeviceDataset, Features, Precision, Targets};
use noisescope_models::{ActivationKind, Init, Loss, ModelSpec, Net};
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};
use serde_json::json;

use crate::args::{BenchArgs, Global};
use crate::output::print_json;

fn host(t: Tensor<1>) -> Vec<f64> {
    t.into_data()
        .convert::<f64>()
        .try_into_vec::<f64>()
        .expect("float data")
}

/// Median wall time in ms of `f` (which must synchronize) over `reps` runs after one warm-up.
fn median_ms(reps: usize, bar: &ProgressBar, mut f: impl FnMut()) -> f64 {
    f();
    let mut t: Vec<f64> = (0..reps)
        .map(|_| {
            let s = Instant::now();
            f();
            bar.inc(1);
            s.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

/// uᵀHu against uᵀ(∇L(θ + εu) − ∇L(θ − εu)) / 2ε for the unit vector u = v/‖v‖.
fn check_hvp(net: &Net, theta: &Tensor<1>, data: &DeviceDataset, v: &Tensor<2>) -> Result<f64> {
    let d = net.dim();
    let v = &(v.clone() / v.clone().powi_scalar(2).sum().sqrt().unsqueeze::<2>());
    let hv = host(net.hvp(theta, data, v).reshape([d]));
    let vv = host(v.clone().reshape([d]));
    let eps = 1e-2;
    let shift = v.clone().reshape([d]) * eps;
    let gp = host(net.gradient(&(theta.clone() + shift.clone()), data).1);
    let gm = host(net.gradient(&(theta.clone() - shift), data).1);
    let exact: f64 = vv.iter().zip(&hv).map(|(a, b)| a * b).sum();
    let fd: f64 = vv
        .iter()
        .zip(gp.iter().zip(&gm))
        .map(|(a, (p, m))| a * (p - m) / (2.0 * eps))
        .sum();
    let rel = (exact - fd).abs() / fd.abs().max(1e-30);
    if rel.is_nan() || rel >= 1e-2 {
        bail!(
            "HVP check failed: vᵀHv = {exact:.6e} but finite differences give {fd:.6e} (rel. error {rel:.2e})"
        );
    }
    Ok(rel)
}

pub fn run(g: &Global, args: &BenchArgs) -> Result<()> {
    let opened = crate::backend::open(g.backend, g.device)?;
    let device = &opened.device;
    let (n, width, k) = if args.quick {
        (200, 512, 20)
    } else {
        (1000, 2048, 20)
    };
    let reps = if args.quick { 3 } else { 7 };
    let (d_in, classes) = (784, 10);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let features = Features {
        n,
        dim: d_in,
        x: (0..n * d_in)
            .map(|_| StandardNormal.sample(&mut rng))
            .collect(),
        targets: Targets::Classes {
            labels: (0..n)
                .map(|_| rand::Rng::random_range(&mut rng, 0..classes as u32))
                .collect(),
            classes,
        },
    };
    let data = DeviceDataset::upload(&features, device, Precision::F32);
    let net = ModelSpec::Mlp {
        widths: vec![d_in, width, classes],
        activation: ActivationKind::Tanh,
        loss: Loss::Mse,
    }
    .build(device, Precision::F32)?;
    let theta = Init::TorchDefault.tensor(&net.layout, 1, device, Precision::F32);
    let mut dirs = |k: usize| {
        let v: Vec<f32> = (0..k * net.dim())
            .map(|_| StandardNormal.sample(&mut rng))
            .collect();
        Tensor::<2>::from_data(TensorData::new(v, [k, net.dim()]), device)
    };
    let (v1, vk) = (dirs(1), dirs(k));
    let check = check_hvp(&net, &theta, &data, &v1)?;

    let bar = ProgressBar::new(4 * reps as u64);
    if g.quiet || g.json {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar.set_style(
        ProgressStyle::with_template("bench [{bar:30}] {pos}/{len} {elapsed}")
            .expect("static template"),
    );
    let grad = median_ms(reps, &bar, || {
        net.gradient(&theta, &data).1.into_data();
    });
    let hvp1 = median_ms(reps, &bar, || {
        net.hvp(&theta, &data, &v1).into_data();
    });
    let hvpk = median_ms(reps, &bar, || {
        net.hvp(&theta, &data, &vk).into_data();
    });
    let ggnk = median_ms(reps, &bar, || {
        net.ggn_vp(&theta, &data, &vk).into_data();
    });
    bar.finish_and_clear();

    let name = format!("tanh 784-{width}-10 MSE, N = {n}, f32");
    let rows = [
        ("gradient", grad),
        ("hvp k=1", hvp1),
        (&*format!("hvp k={k}"), hvpk),
        (&*format!("ggn k={k}"), ggnk),
    ];
    if g.json {
        print_json(&json!({
            "meta": {"device": opened.description, "backend": format!("{:?}", g.backend).to_lowercase(),
                     "noisescope": env!("CARGO_PKG_VERSION"), "burn": "0.22.1", "reps": reps},
            "workload": name, "hvp_check_rel_error": check,
            "rows": rows.iter().map(|(w, ms)| json!({"name": w, "median_ms": ms})).collect::<Vec<_>>(),
            "ratios": {"hvp_over_gradient": hvp1 / grad, "block_over_hvp": hvpk / hvp1},
        }));
        return Ok(());
    }
    println!("{name} on {}", opened.description);
    println!("HVP check against finite differences: rel. error {check:.1e}");
    println!("{:<12} {:>12}", "product", "median ms");
    for (w, ms) in rows {
        println!("{w:<12} {ms:>12.2}");
    }
    println!();
    println!(
        "one HVP / one gradient      {:>6.2}  (target ≤ 3)",
        hvp1 / grad
    );
    println!(
        "block of {k} / one HVP       {:>6.2}  (target ≤ 10)",
        hvpk / hvp1
    );
    Ok(())
}
