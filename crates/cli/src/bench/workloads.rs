//! The workloads of SPEC §6 as the anchor runs them (`docs/dev/torch-anchor-rows.md` lists
//! the anchor's rows; every `params_str` here is byte-for-byte the anchor's where a PyTorch
//! row computes the same thing).

use std::collections::HashMap;

use anyhow::Result;
use burn::prelude::*;
use burn::tensor::Distribution;
use noisescope_data::{DeviceDataset, Features, Precision, Targets};
use noisescope_models::{ActivationKind, Init, Loss, ModelSpec, Net};
use noisescope_noise::{NoiseShape, NoiseStream, Optimizer, OptimizerConfig};
use noisescope_probe::escape::trace_with_covariance;
use noisescope_probe::linalg::{
    ProbeKind, REDUCTION_CHUNK, inner_products, orthonormalize_rows, random_directions, row_dots,
    row_sums, to_device, to_host,
};
use noisescope_probe::trace::hutchinson;
use noisescope_probe::{GradientNoise, Hessian, LanczosConfig, Operator, lanczos};
use rand::SeedableRng;
use rand_distr::{Distribution as _, StandardNormal};
use serde_json::json;

use super::timing::{per_call, whole_runs};
use super::{Ctx, Recorder, ensure};

const INPUTS: usize = 784;
const CLASSES: usize = 10;

/// The pool: x standard normal [n, 784], labels uniform in 0..9 (the anchor's `make_data`, with
/// ChaCha8 in place of numpy's stream).
pub fn make_data(n: usize, seed: u64) -> Features {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let x = (0..n * INPUTS)
        .map(|_| StandardNormal.sample(&mut rng))
        .collect();
    let labels = (0..n)
        .map(|_| rand::Rng::random_range(&mut rng, 0..CLASSES as u32))
        .collect();
    Features {
        n,
        dim: INPUTS,
        x,
        targets: Targets::Classes {
            labels,
            classes: CLASSES,
        },
    }
}

/// Samples `from..from + n` of the pool.
fn slice(pool: &Features, from: usize, n: usize) -> Features {
    let Targets::Classes { labels, classes } = &pool.targets else {
        unreachable!("the pool has class labels")
    };
    Features {
        n,
        dim: pool.dim,
        x: pool.x[from * pool.dim..(from + n) * pool.dim].to_vec(),
        targets: Targets::Classes {
            labels: labels[from..from + n].to_vec(),
            classes: *classes,
        },
    }
}

/// The step workloads' batches: samples [i·B, (i+1)·B) of the pool for i < `w1_pool_batches`,
/// on the bench device, targets shaped for `net`.
fn batch_pool(c: &Ctx, net: &Net, batch: usize) -> Vec<DeviceDataset> {
    (0..c.sizes.w1_pool_batches)
        .map(|i| {
            net.adapt(DeviceDataset::upload(
                &slice(&c.pool, i * batch, batch),
                &c.opened.device,
                Precision::F32,
            ))
        })
        .collect()
}

/// D of the MLP 784–d–10.
fn params_of(d: usize) -> usize {
    INPUTS * d + d + CLASSES * d + CLASSES
}

/// FLOPs of one forward pass of 784–d–10 on n samples (the matmuls).
fn forward_flops(n: usize, d: usize) -> f64 {
    2.0 * n as f64 * (INPUTS * d + d * CLASSES) as f64
}

/// FLOPs of one gradient: forward, weight gradients, and δ through the output layer (the
/// anchor's `train_flops`).
fn gradient_flops(n: usize, d: usize) -> f64 {
    2.0 * forward_flops(n, d) + 2.0 * (n * d * CLASSES) as f64
}

/// Pearlmutter's HVP is at least a gradient and its R-pass: ≈ 2 gradients.
fn hvp_flops(n: usize, d: usize) -> f64 {
    2.0 * gradient_flops(n, d)
}

/// The anchor's two models: (a) tanh 784–2048–10 MSE, (b) ReLU 784–512–10 cross-entropy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Model {
    A,
    B,
}

impl Model {
    fn tag(self) -> &'static str {
        match self {
            Model::A => "a",
            Model::B => "b",
        }
    }

    fn width(self) -> usize {
        match self {
            Model::A => 2048,
            Model::B => 512,
        }
    }

    fn spec(self, width: usize) -> ModelSpec {
        let (activation, loss) = match self {
            Model::A => (ActivationKind::Tanh, Loss::Mse),
            Model::B => (ActivationKind::Relu, Loss::CrossEntropy),
        };
        ModelSpec::Mlp {
            widths: vec![INPUTS, width, CLASSES],
            activation,
            loss,
        }
    }

    fn arch(self, width: usize) -> String {
        match self {
            Model::A => format!("tanh 784-{width}-10 mse"),
            Model::B => format!("relu 784-{width}-10 ce"),
        }
    }
}

/// A network, θ and data on the bench's device.
struct Problem {
    model: Model,
    net: Net,
    theta: Tensor<1>,
    data: DeviceDataset,
}

impl Problem {
    fn new(c: &Ctx, model: Model, n: usize, init_seed: u64) -> Result<Self> {
        Self::on(
            c,
            model,
            model.width(),
            n,
            init_seed,
            &c.opened.device,
            Precision::F32,
        )
    }

    fn on(
        c: &Ctx,
        model: Model,
        width: usize,
        n: usize,
        init_seed: u64,
        device: &Device,
        precision: Precision,
    ) -> Result<Self> {
        let net = model.spec(width).build(device, precision)?;
        let theta = Init::TorchDefault.tensor(&net.layout, init_seed, device, precision);
        let data = net.adapt(DeviceDataset::upload(
            &slice(&c.pool, 0, n),
            device,
            precision,
        ));
        Ok(Problem {
            model,
            net,
            theta,
            data,
        })
    }

    fn dim(&self) -> usize {
        self.net.dim()
    }

    fn hessian(&self) -> Hessian<'_> {
        Hessian {
            net: &self.net,
            theta: &self.theta,
            data: &self.data,
            weight_decay: 0.0,
        }
    }

    fn params(&self, n: usize) -> serde_json::Value {
        json!({"model": self.model.tag(), "arch": self.model.arch(self.model.width()), "N": n, "D": self.dim()})
    }
}

/// A small float as Python's repr writes it: 1e-06, 2.5e-07.
fn python_exp(v: f64) -> String {
    let s = format!("{v:e}");
    match s.split_once('e') {
        Some((m, e)) => {
            let (sign, digits) = e.strip_prefix('-').map_or(("+", e), |d| ("-", d));
            format!("{m}e{sign}{digits:0>2}")
        }
        None => s,
    }
}

fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

fn rel_err(a: &[f64], b: &[f64]) -> f64 {
    let diff: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    norm(&diff) / norm(b).max(f64::MIN_POSITIVE)
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// For the first row u of `vectors` (a unit eigenvector estimate with value λ):
/// (‖A u − λ u‖ / |λ|, uᵀ A u).
fn top_pair(op: &impl Operator, vectors: &Tensor<2>, value: f64) -> (f64, f64) {
    let u = vectors.clone().narrow(0, 0, 1);
    let au = to_host(op.apply(&u));
    let uh = to_host(u);
    let resid: Vec<f64> = au.iter().zip(&uh).map(|(a, x)| a - value * x).collect();
    (norm(&resid) / value.abs(), dot(&uh, &au))
}

/// W1: one SGD step (lr 0.1) of the tanh MLP 784–d–10 on a pool of 8 batches, cycled.
pub fn w1(c: &Ctx, r: &mut Recorder) -> Result<()> {
    let configs = c.sizes.w1_configs.clone();
    for (d, batch) in configs {
        for loss in c.sizes.w1_losses.clone() {
            let params =
                json!({"d": d, "batch": batch, "act": "tanh", "loss": loss, "opt": "SGD lr=0.1"});
            let params_str = format!("tanh d={d} B={batch} {loss}");
            r.row("W1", "train_step", params, &params_str, |row| {
                let device = &c.opened.device;
                let spec = ModelSpec::Mlp {
                    widths: vec![INPUTS, d, CLASSES],
                    activation: ActivationKind::Tanh,
                    loss: if loss == "mse" {
                        Loss::Mse
                    } else {
                        Loss::CrossEntropy
                    },
                };
                let net = spec.build(device, Precision::F32)?;
                let batches = batch_pool(c, &net, batch);
                let mut theta =
                    Init::TorchDefault.tensor(&net.layout, c.seed, device, Precision::F32);
                let mut opt = Optimizer::new(
                    OptimizerConfig {
                        lr: c.sizes.lr,
                        ..Default::default()
                    },
                    u64::MAX,
                );
                let loss_first = net.loss(&theta, &batches[0]);
                let mut i = 0;
                let stats = per_call(device, &c.timing, || {
                    let (_, g) = net.gradient(&theta, &batches[i % batches.len()]);
                    theta = opt.step(theta.clone(), g);
                    i += 1;
                })?;
                let loss_after = net.loss(&theta, &batches[i % batches.len()]);
                row.check("loss_first", loss_first);
                row.check("loss_after", loss_after);
                row.check("loss_finite", loss_after.is_finite());
                ensure(loss_after.is_finite(), || {
                    format!("the loss is {loss_after} after {i} steps")
                })?;
                let flops = gradient_flops(batch, d);
                row.work(flops, 4.0 * (batch * INPUTS + 3 * params_of(d)) as f64);
                row.note("steps_timed", i);
                row.note("approx_tflops", flops / (stats.median_ms / 1e3) / 1e12);
                row.timed(stats, batch as f64, "samples/s");
                Ok(())
            })?;
        }
    }
    Ok(())
}

/// The f64 finite-difference check of the R-op on a 784–16–10 net with N = 32 (on the CPU in
/// f64, where the reference lives), and the bench device's f32 HVP against it.
fn hvp_fd_check(c: &Ctx, r: &mut Recorder, model: Model) -> Result<()> {
    let (d, n, eps) = (c.sizes.tiny_d, c.sizes.tiny_n, c.sizes.fd_eps);
    let arch = model.arch(d);
    let params = json!({"model": model.tag(), "d": d, "N": n, "eps": eps});
    let params_str = format!("({}) {arch} N={n} eps={}", model.tag(), python_exp(eps));
    r.row("W2", "hvp fd_check(float64)", params, &params_str, |row| {
        let cpu = crate::backend::open(crate::args::BackendKind::Ndarray, None)?;
        let reference = Problem::on(c, model, d, n, c.seed + 7, &cpu.device, Precision::F64)?;
        let dim = reference.dim();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(c.seed + 11);
        let mut v: Vec<f64> = (0..dim).map(|_| StandardNormal.sample(&mut rng)).collect();
        let nv = norm(&v);
        v.iter_mut().for_each(|x| *x /= nv);
        let theta = to_host(reference.theta.clone());
        let f64_dt = Precision::F64.dtype();
        let shifted = |s: f64| -> Vec<f64> {
            let th: Vec<f64> = theta.iter().zip(&v).map(|(t, u)| t + s * eps * u).collect();
            let th = to_device(th, 1, dim, &cpu.device, f64_dt).reshape([dim]);
            to_host(reference.net.gradient(&th, &reference.data).1)
        };
        let (gp, gm) = (shifted(1.0), shifted(-1.0));
        let fd: Vec<f64> = gp.iter().zip(&gm).map(|(p, m)| (p - m) / (2.0 * eps)).collect();
        let vt = to_device(v.clone(), 1, dim, &cpu.device, f64_dt);
        let hv64 = to_host(reference.net.hvp(&reference.theta, &reference.data, &vt));
        // The bench device, f32, same θ and v.
        let device = &c.opened.device;
        let p32 = Problem::on(c, model, d, n, c.seed + 7, device, Precision::F32)?;
        let v32 = to_device(v, 1, dim, device, Precision::F32.dtype());
        let hv32 = to_host(p32.net.hvp(&p32.theta, &p32.data, &v32));
        let (e64, e32) = (rel_err(&hv64, &fd), rel_err(&hv32, &fd));
        let pass = e64 < 1e-6 && e32 < 1e-4;
        row.check("f64_rop_vs_fd", e64);
        row.check("f32_rop_vs_f64_fd", e32);
        row.check("pass", pass);
        row.table_note = Some(format!(
            "{}: f64 R-op vs FD {e64:.1e} (< 1e-6), f32 on this device vs f64 FD {e32:.1e} (< 1e-4)",
            if pass { "PASS" } else { "FAIL" }
        ));
        ensure(pass, || row.table_note.clone().unwrap_or_default())
    })
}

/// H v in f64 on the CPU for the same net, θ (as initialized) and data: the reference a
/// device's f32 HVP is held to (the R-op itself is checked against finite differences by
/// `hvp_fd_check`; this catches a backend that computes it wrongly).
fn reference_hvp(
    c: &Ctx,
    p: &Problem,
    n: usize,
    init_seed: u64,
    v: &Tensor<2>,
) -> Result<Vec<f64>> {
    let cpu = crate::backend::open(crate::args::BackendKind::Ndarray, None)?;
    let r = Problem::on(
        c,
        p.model,
        p.model.width(),
        n,
        init_seed,
        &cpu.device,
        Precision::F64,
    )?;
    let [k, d] = v.dims();
    let v64 = to_device(
        to_host(v.clone()),
        k,
        d,
        &cpu.device,
        Precision::F64.dtype(),
    );
    Ok(to_host(r.net.hvp(&r.theta, &r.data, &v64)))
}

/// W2: full-batch HVPs of both models at each N: one direction per pass, a block of
/// `sizes.block` per pass (timed per direction), and a gradient for scale.
pub fn w2(c: &Ctx, r: &mut Recorder) -> Result<()> {
    for model in [Model::A, Model::B] {
        hvp_fd_check(c, r, model)?;
        for n in c.sizes.w2_ns.clone() {
            let p = Problem::new(c, model, n, c.seed + 1)?;
            let d = p.dim();
            let device = c.opened.device.clone();
            let params_str = format!("({}) {} N={n}", model.tag(), model.arch(model.width()));
            let v = random_directions(
                1,
                d,
                ProbeKind::Gaussian,
                c.seed + 3,
                &device,
                p.theta.dtype(),
            );
            let k = c.sizes.block;
            let vk = random_directions(
                k,
                d,
                ProbeKind::Gaussian,
                c.seed + 4,
                &device,
                p.theta.dtype(),
            );
            let hvp = hvp_flops(n, model.width());
            let mut params = p.params(n);
            params["note"] = json!("Pearlmutter R-op, one direction per pass");
            r.row("W2", "hvp R-op", params, &params_str, |row| {
                let stats = per_call(&device, &c.timing, || {
                    let _ = p.net.hvp(&p.theta, &p.data, &v);
                })?;
                let want = reference_hvp(c, &p, n, c.seed + 1, &v)?;
                let e = rel_err(&to_host(p.net.hvp(&p.theta, &p.data, &v)), &want);
                row.check("rel_err_vs_cpu_f64", e);
                ensure(e < 1e-3, || {
                    format!("H v against the CPU's f64 H v: rel. error {e:.2e}")
                })?;
                row.work(hvp, 4.0 * (n * INPUTS + 3 * d) as f64);
                row.timed(stats, 1.0, "HVP/s");
                Ok(())
            })?;
            let mut params = p.params(n);
            params["note"] = json!(format!(
                "{k} directions per R-op pass; median_ms is per direction"
            ));
            r.row(
                "W2",
                &format!("hvp R-op block of {k} (per direction)"),
                params,
                &params_str,
                |row| {
                    let stats = per_call(&device, &c.timing, || {
                        let _ = p.net.hvp(&p.theta, &p.data, &vk);
                    })?;
                    // The block's first row against the same direction alone.
                    let block = to_host(p.net.hvp(&p.theta, &p.data, &vk).narrow(0, 0, 1));
                    let single = to_host(p.net.hvp(&p.theta, &p.data, &vk.clone().narrow(0, 0, 1)));
                    let e = rel_err(&block, &single);
                    row.check("rel_err_block_row0_vs_single", e);
                    ensure(e < 1e-4, || {
                        format!("a block's HVP differs from the single HVP by {e:.2e}")
                    })?;
                    row.note("block_ms", stats.median_ms);
                    row.work(hvp, 4.0 * (n * INPUTS + 3 * d) as f64 / k as f64);
                    row.timed(stats.per_unit(k), 1.0, "HVP/s");
                    Ok(())
                },
            )?;
            r.row(
                "W2",
                "gradient (reference)",
                p.params(n),
                &params_str,
                |row| {
                    row.anchor.clear(); // PyTorch's anchor has no gradient row
                    let stats = per_call(&device, &c.timing, || {
                        let _ = p.net.gradient(&p.theta, &p.data);
                    })?;
                    row.work(
                        gradient_flops(n, model.width()),
                        4.0 * (n * INPUTS + 2 * d) as f64,
                    );
                    row.timed(stats, 1.0, "grad/s");
                    Ok(())
                },
            )?;
        }
    }
    Ok(())
}

/// The top of Σ₁ from W3, for W6's low-rank noise: unit vectors [k, D], eigenvalues, Tr Σ₁.
#[derive(Clone)]
pub struct Factor {
    vectors: Tensor<2>,
    values: Vec<f64>,
    trace: f64,
}

/// W3's factors by model.
pub type Factors = HashMap<Model, Factor>;

/// W3: factored per-sample gradients of N samples, the top-k eigenpairs of Σ₁ from the N×N
/// Gram matrix, and diag Σ₁; both models.
pub fn w3(c: &Ctx, r: &mut Recorder, factors: &mut Factors) -> Result<()> {
    let (n, k) = (c.sizes.ps_n, c.sizes.topk);
    for model in [Model::A, Model::B] {
        let p = Problem::new(c, model, n, c.seed + 1)?;
        let d = p.dim();
        let device = c.opened.device.clone();
        let width = model.width();
        let base = format!("({}) {} N={n} D={d}", model.tag(), model.arch(width));
        r.row(
            "W3",
            "per-sample grads (factored)",
            p.params(n),
            &base,
            |row| {
                let stats = per_call(&device, &c.timing, || {
                    let _ = p.net.sample_gradients(&p.theta, &p.data);
                })?;
                let noise = GradientNoise::of(&p.net, &p.theta, &p.data);
                let full = to_host(p.net.gradient(&p.theta, &p.data).1);
                let e = rel_err(&to_host(noise.mean().clone()), &full);
                row.check("rel_err_mean_g_vs_fullbatch_grad", e);
                ensure(e < 1e-4, || {
                    format!("the mean per-sample gradient is {e:.2e} off the gradient")
                })?;
                row.note(
                    "factors_MiB",
                    4.0 * (n * (INPUTS + 1 + width + 1 + width + CLASSES)) as f64 / 1048576.0,
                );
                row.work(
                    forward_flops(n, width) + 2.0 * (n * width * CLASSES) as f64,
                    4.0 * (n * INPUTS) as f64,
                );
                row.timed(stats, n as f64, "samples/s");
                Ok(())
            },
        )?;
        let g_bytes = (n * d * 4) as f64;
        let materialized = "per-sample grads materialized G";
        // One wgpu binding holds at most 2³² bytes on most drivers, 128 MiB on lavapipe.
        let lavapipe = c.opened.description.contains("llvmpipe");
        let cap = if lavapipe {
            128.0 * 1048576.0
        } else {
            2.0 * 1073741824.0
        };
        if c.opened.kind == crate::args::BackendKind::Wgpu && g_bytes > cap {
            r.skip(
                "W3",
                materialized,
                &base,
                &format!(
                    "G is {:.0} MiB, above the {:.0} MiB this bench binds as one wgpu buffer here",
                    g_bytes / 1048576.0,
                    cap / 1048576.0
                ),
            );
        } else {
            r.row("W3", materialized, p.params(n), &base, |row| {
                let stats = per_call(&device, &c.timing, || {
                    let _ = p.net.sample_gradients(&p.theta, &p.data).materialize();
                })?;
                row.note("G_GiB", g_bytes / 1073741824.0);
                row.note("G_write_GBps", g_bytes / (stats.median_ms / 1e3) / 1e9);
                row.work(forward_flops(n, width) + (n * d) as f64, g_bytes);
                row.timed(stats, n as f64, "samples/s");
                Ok(())
            })?;
        }
        let grads = p.net.sample_gradients(&p.theta, &p.data);
        let mut params = p.params(n);
        params["k"] = json!(k);
        let top_str = format!("({}) N={n} D={d} k={k}", model.tag());
        r.row(
            "W3",
            &format!("sigma top-{k} via NxN gram (f64 host eigh)"),
            params,
            &top_str,
            |row| {
                let stats = per_call(&device, &c.timing, || {
                    let _ = GradientNoise::new(grads.clone()).top_k(k, true);
                })?;
                let noise = GradientNoise::new(grads.clone());
                let top = noise.top_k(k, true);
                let (r, _) = top_pair(&noise.operator(), &top.vectors, top.values[0]);
                let kk = top.values.len();
                let gram = to_host(inner_products(&top.vectors, &top.vectors));
                let ortho = (0..kk * kk)
                    .map(|i| (gram[i] - if i / kk == i % kk { 1.0 } else { 0.0 }).abs())
                    .fold(0.0, f64::max);
                row.check("top1_resid_rel", r);
                row.check("V_orthonormality_err", ortho);
                row.note(
                    "top_eigs",
                    top.values.iter().take(5).copied().collect::<Vec<_>>(),
                );
                ensure(r < 1e-3 && ortho < 1e-3, || {
                    format!("top pair residual {r:.2e}, orthonormality error {ortho:.2e}")
                })?;
                let tr = noise.trace();
                factors.insert(
                    model,
                    Factor {
                        vectors: top.vectors.clone(),
                        values: top.values.clone(),
                        trace: tr,
                    },
                );
                row.note("tr_sigma", tr);
                let nf = n as f64;
                row.work(
                    2.0 * nf * nf * (INPUTS + 2 * width + CLASSES + 2) as f64
                        + 2.0 * (k * n * d) as f64,
                    4.0 * (k * d) as f64,
                );
                row.timed(stats, 1.0, "decomp/s");
                Ok(())
            },
        )?;
        let diag_str = format!("({}) N={n} D={d}", model.tag());
        r.row(
            "W3",
            "diag(Sigma) from factors",
            p.params(n),
            &diag_str,
            |row| {
                let noise = GradientNoise::new(grads.clone());
                let stats = per_call(&device, &c.timing, || {
                    let _ = noise.diagonal();
                })?;
                let tr_diag = noise.trace();
                let kdiag = to_host(grads.gram());
                let mean = to_host(noise.mean().clone());
                let tr_gram =
                    (0..n).map(|i| kdiag[i * n + i]).sum::<f64>() / n as f64 - dot(&mean, &mean);
                let e = (tr_diag - tr_gram).abs() / tr_gram.abs();
                row.check("rel_err_trace_diag_vs_gram", e);
                row.note("tr_sigma", tr_diag);
                ensure(e < 1e-3, || {
                    format!("Tr Σ₁ from diag {tr_diag:.6e} vs Gram {tr_gram:.6e}")
                })?;
                row.work(
                    2.0 * (n * d) as f64,
                    4.0 * (n * (INPUTS + width + CLASSES) + 2 * d) as f64,
                );
                row.timed(stats, 1.0, "diag/s");
                Ok(())
            },
        )?;
    }
    Ok(())
}

/// W4: the top-k Hessian eigenvalues of model (b) by Lanczos with full reorthogonalization.
pub fn w4(c: &Ctx, r: &mut Recorder) -> Result<()> {
    let (n, m, k) = (c.sizes.lanczos_n, c.sizes.lanczos_iters, c.sizes.lanczos_k);
    let p = Problem::new(c, Model::B, n, c.seed + 1)?;
    let d = p.dim();
    let device = c.opened.device.clone();
    let mut params = p.params(n);
    params["iters"] = json!(m);
    params["k"] = json!(k);
    params["reorth"] = json!("full, 2x CGS");
    params["note"] = json!(
        "R-op HVPs at a linearization (forward and backward at θ once), α and β read back each step"
    );
    let params_str = format!("(b) {} N={n} iters={m} full-reorth", Model::B.arch(512));
    r.row("W4", &format!("lanczos top-{k} R-op"), params, &params_str, |row| {
        let h = p.hessian();
        let cfg = LanczosConfig {
            k,
            steps: m,
            seed: c.seed + 5,
            tol: 0.0,
        };
        // The forward and backward passes at θ are taken once per run (inside the timing),
        // like PyTorch's HVPs on a retained graph.
        let stats = whole_runs(&device, &c.timing, || {
            let _ = lanczos(&h.linearized(), cfg);
        })?;
        let pairs = lanczos(&h.linearized(), cfg);
        let theta1 = pairs.values[0];
        let (r, rayleigh) = top_pair(&h, &pairs.vectors, theta1);
        let e = (rayleigh - theta1).abs() / theta1.abs();
        row.check("top1_ritz_resid_rel", r);
        row.check("rayleigh_vs_ritz_rel", e);
        row.note("top_eigs", pairs.values.iter().take(5).copied().collect::<Vec<_>>());
        row.note("median_s", stats.median_ms / 1e3);
        ensure(e < 1e-3, || {
            format!("the top Ritz value {theta1:.6e} is not its vector's Rayleigh quotient {rayleigh:.6e}")
        })?;
        row.work(
            m as f64 * hvp_flops(n, 512) + 4.0 * (d * m * m) as f64,
            8.0 * (d * m * m) as f64,
        );
        row.timed(stats, m as f64, "HVP/s(incl reorth)");
        Ok(())
    })
}

/// W5: Hutchinson's Tr H with P Rademacher probes, and Tr(HΣ₁) exactly from N + 1 HVPs.
pub fn w5(c: &Ctx, r: &mut Recorder) -> Result<()> {
    let (n, probes, chunk) = (c.sizes.hutch_n, c.sizes.hutch_probes, c.sizes.hvp_chunk);
    let p = Problem::new(c, Model::B, n, c.seed + 1)?;
    let d = p.dim();
    let device = c.opened.device.clone();
    let mut params = p.params(n);
    params["probes"] = json!(probes);
    let name = format!(
        "hutchinson Tr(H) R-op blocks of {}",
        p.hessian().max_block().min(probes)
    );
    let own = format!("(b) N={n} probes={probes}");
    let hvp = hvp_flops(n, 512);
    r.row("W5", &name, params, &own, |row| {
        row.anchor = vec![
            format!("(b) N={n} probes={probes} retained-graph loop"),
            format!("(b) N={n} probes={probes} vmap chunk=200"),
        ];
        let h = p.hessian();
        let stats = whole_runs(&device, &c.timing, || {
            let _ = hutchinson(&h.linearized(), probes, c.seed + 9);
        })?;
        let est = hutchinson(&h.linearized(), probes, c.seed + 9);
        row.note("trace_H_estimate", est.value);
        row.note("std_error", est.std_error);
        row.note("median_s", stats.median_ms / 1e3);
        ensure(est.value.is_finite() && est.std_error.is_finite(), || {
            format!("Tr H = {} ± {}", est.value, est.std_error)
        })?;
        // The first probes' quadratic forms zᵀHz against f64 on the CPU (same host-drawn z).
        let z = random_directions(
            probes.min(4),
            d,
            ProbeKind::Rademacher,
            c.seed + 9,
            &device,
            p.theta.dtype(),
        );
        let got = to_host(row_dots(&h.apply(&z), &z));
        let hz = reference_hvp(c, &p, n, c.seed + 1, &z)?;
        let zh = to_host(z.clone());
        let want: Vec<f64> = (0..got.len())
            .map(|i| dot(&zh[i * d..(i + 1) * d], &hz[i * d..(i + 1) * d]))
            .collect();
        let e = rel_err(&got, &want);
        row.check("rel_err_quadratic_forms_vs_cpu_f64", e);
        ensure(e < 1e-3, || {
            format!("zᵀHz of the first probes: {got:?} against f64 {want:?}")
        })?;
        row.work(probes as f64 * hvp, 0.0);
        row.timed(stats, probes as f64, "HVP/s");
        Ok(())
    })?;
    let mut params = p.params(n);
    params["chunk"] = json!(chunk);
    let params_str = format!("(b) N={n} D={d} {n}+1 HVPs chunk={chunk}");
    r.row("W5", "exact Tr(H Sigma) R-op", params, &params_str, |row| {
        let h = p.hessian();
        let mut value = 0.0;
        let stats = whole_runs(&device, &c.timing, || {
            let (_, mean) = p.net.gradient(&p.theta, &p.data);
            value = trace_with_covariance(&h, &p.net, &p.theta, &p.data, &mean, chunk);
        })?;
        // Blocking must not change the value: 6 samples in one block against one at a time.
        let few = DeviceDataset::upload(&slice(&c.pool, 0, 6), &device, Precision::F32);
        let few = p.net.adapt(few);
        let hf = Hessian { data: &few, ..h };
        let mean = p.net.gradient(&p.theta, &few).1;
        let (t6, t1) = (
            trace_with_covariance(&hf, &p.net, &p.theta, &few, &mean, 6),
            trace_with_covariance(&hf, &p.net, &p.theta, &few, &mean, 1),
        );
        let e = (t6 - t1).abs() / t1.abs().max(f64::MIN_POSITIVE);
        row.check("rel_err_blocked_vs_single", e);
        row.note("tr_H_Sigma", value);
        row.note("median_s", stats.median_ms / 1e3);
        ensure(e < 1e-3 && value.is_finite(), || {
            format!("Tr(HΣ) {value}; blocked {t6:.6e} vs one at a time {t1:.6e}")
        })?;
        row.work((n + 1) as f64 * hvp, 0.0);
        row.timed(stats, (n + 1) as f64, "HVP/s(incl G)");
        Ok(())
    })
}

/// W6: one step of the leading-eigenvector GLD (`lowrank-k`: minibatch gradient plus
/// ξ = Σ_j √(c λ_j) z_j u_j with Tr C = Tr Σ₁), and the plain SGD step beside it.
pub fn w6(c: &Ctx, r: &mut Recorder, factors: &Factors) -> Result<()> {
    let (batch, k, lr) = (c.sizes.gld_batch, c.sizes.gld_k, c.sizes.lr);
    for model in [Model::B, Model::A] {
        let p = Problem::new(c, model, batch, c.seed + 1)?;
        let d = p.dim();
        let device = c.opened.device.clone();
        let batches = batch_pool(c, &p.net, batch);
        let (factor, source) = match factors.get(&model).cloned() {
            Some(f) if f.values.len() >= k => (f, "W3"),
            _ => {
                let v = random_directions(
                    k,
                    d,
                    ProbeKind::Gaussian,
                    c.seed + 13,
                    &device,
                    p.theta.dtype(),
                );
                let values: Vec<f64> = (0..k)
                    .map(|j| 10f64.powf(-2.0 * j as f64 / (k - 1).max(1) as f64))
                    .collect();
                let trace = 3.0 * values.iter().sum::<f64>();
                (
                    Factor {
                        vectors: orthonormalize_rows(v),
                        values,
                        trace,
                    },
                    "synthetic",
                )
            }
        };
        let values = &factor.values[..k];
        let scale = factor.trace / values.iter().sum::<f64>();
        let shape = NoiseShape::LowRank {
            vectors: factor.vectors.clone().narrow(0, 0, k),
            std: values.iter().map(|l| (scale * l).sqrt()).collect(),
        };
        let params = json!({"model": model.tag(), "arch": model.arch(model.width()), "batch": batch, "k": k, "D": d, "lr": lr,
                            "update": "theta -= lr * (grad_B + sum_j sqrt(c lam_j) z_j u_j), c = Tr Sigma / sum lam"});
        let params_str = format!(
            "({}) {} B={batch} k={k}",
            model.tag(),
            model.arch(model.width())
        );
        let mut theta = p.theta.clone();
        let flops = gradient_flops(batch, model.width());
        for noisy in [true, false] {
            let name = if noisy {
                "gld_leading step (grad+lowrank noise)"
            } else {
                "plain sgd step (reference)"
            };
            r.row("W6", name, params.clone(), &params_str, |row| {
                let mut stream = NoiseStream::new(c.seed + 17);
                let dtype = theta.dtype();
                let mut i = 0;
                let stats = per_call(&device, &c.timing, || {
                    let (_, g) = p.net.gradient(&theta, &batches[i % batches.len()]);
                    let step = if noisy {
                        g + shape.sample(&mut stream, &device, dtype)
                    } else {
                        g
                    };
                    theta = theta.clone() - step * lr;
                    i += 1;
                })?;
                let loss = p.net.loss(&theta, &batches[0]);
                row.check("loss_finite_after", loss.is_finite());
                ensure(loss.is_finite(), || {
                    format!("the loss is {loss} after {i} steps")
                })?;
                if noisy {
                    let e = (shape.trace() - factor.trace).abs() / factor.trace;
                    row.check("factor_trace_rel_err", e);
                    ensure(e < 1e-6, || format!("Tr C is {e:.2e} off Tr Σ₁"))?;
                    row.note("factor_source", source);
                    row.note("noise_trace_target", factor.trace);
                    row.note("scale_c", scale);
                }
                row.note("steps_timed", i);
                let noise_flops = if noisy { 2.0 * (k * d) as f64 } else { 0.0 };
                row.work(
                    flops + noise_flops,
                    4.0 * (batch * INPUTS + 3 * d + if noisy { k * d } else { 0 }) as f64,
                );
                row.timed(stats, 1.0, "steps/s");
                Ok(())
            })?;
        }
    }
    Ok(())
}

/// HW: the f32 matmul rate and the copy bandwidth that bound every workload.
pub fn hw(c: &Ctx, r: &mut Recorder) -> Result<()> {
    let n = c.sizes.matmul_n;
    let device = c.opened.device.clone();
    let params = json!({"n": n, "allow_tf32": false});
    let params_str = format!("{n}x{n}x{n} allow_tf32=False");
    r.row("HW", "matmul f32", params, &params_str, |row| {
        let a = Tensor::<2>::random([n, n], Distribution::Normal(0.0, 1.0), &device);
        let bm = Tensor::<2>::random([n, n], Distribution::Normal(0.0, 1.0), &device);
        // The product every pass of noisescope's layers uses (on the CPU: the matrix engine).
        let product = || noisescope_models::ops::matmul(a.clone(), false, bm.clone(), false);
        let stats = per_call(&device, &c.timing, || {
            let _ = product();
        })?;
        let s = 64.min(n);
        let c = to_host(product().slice([0..s, 0..s]));
        let ah = to_host(a.slice([0..s, 0..n]));
        let bh = to_host(bm.slice([0..n, 0..s]));
        let want: Vec<f64> = (0..s * s)
            .map(|ij| {
                (0..n)
                    .map(|l| ah[(ij / s) * n + l] * bh[l * s + ij % s])
                    .sum()
            })
            .collect();
        let e = rel_err(&c, &want);
        row.check("rel_err_vs_f64_block", e);
        ensure(e < 1e-4, || {
            format!("a {s}×{s} block of the product is {e:.2e} off f64")
        })?;
        let flops = 2.0 * (n as f64).powi(3);
        row.work(flops, 12.0 * (n * n) as f64);
        row.timed(stats, flops / 1e12, "TFLOP/s");
        Ok(())
    })?;
    // Row reductions over a parameter-length axis (the per-probe dots zᵢᵀ(H zᵢ) of W5, the
    // Gram-Schmidt products of W4): k rows of D summed along D by `row_sums` (in chunks of
    // 2¹⁵ columns, what every probe uses), against f64 on the host. The backend's own one-shot
    // `sum_dim` is checked beside it and reported: on lavapipe (burn 0.22.1) it is wrong for
    // axes this long, which is why the probes chunk.
    for d in [Model::B, Model::A].map(|m| params_of(m.width())) {
        let k = c.sizes.block;
        let params = json!({"rows": k, "D": d, "chunk": REDUCTION_CHUNK});
        r.row("HW", "row reduction over D (chunked)", params, &format!("{k}x{d} f32"), |row| {
            row.anchor.clear(); // the anchor times no reduction on its own
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(c.seed + 23);
            let x: Vec<f32> = (0..k * d).map(|_| StandardNormal.sample(&mut rng)).collect();
            let t = Tensor::<2>::from_data(TensorData::new(x.clone(), [k, d]), &device);
            let stats = per_call(&device, &c.timing, || {
                let _ = row_sums(t.clone());
            })?;
            let want: Vec<f64> = (0..k)
                .map(|i| x[i * d..(i + 1) * d].iter().map(|&v| v as f64).sum())
                .collect();
            // f32 sums of D standard normals: rounding ~1e-7·D against a sum of size √D.
            let err = |got: &[f64]| {
                got.iter()
                    .zip(&want)
                    .map(|(g, w)| (g - w).abs())
                    .fold(0.0, f64::max)
                    / (d as f64).sqrt()
            };
            let chunked = err(&to_host(row_sums(t.clone())));
            let raw = err(&to_host(t.clone().sum_dim(1)));
            row.check("max_abs_err_over_sqrt_D", chunked);
            row.check("backend_sum_dim_err_over_sqrt_D", raw);
            if raw >= 1e-3 {
                row.table_note = Some(format!(
                    "this backend's one-shot sum_dim over {d} columns is wrong ({raw:.2e}·√D); noisescope's chunked reductions are right ({chunked:.1e}·√D)"
                ));
            }
            ensure(chunked < 1e-3, || {
                format!("chunked sums of {d} numbers are off by {chunked:.2e}·√D")
            })?;
            row.work(0.0, 4.0 * (k * d) as f64);
            row.timed(stats, 4.0 * (k * d) as f64 / 1e9, "GB/s(read)");
            Ok(())
        })?;
    }
    let mib = c.sizes.copy_mib;
    let params = json!({"MiB": mib});
    r.row(
        "HW",
        "device copy (x * 1)",
        params,
        &format!("{mib} MiB f32"),
        |row| {
            let len = mib * 1024 * 1024 / 4;
            let src = Tensor::<1>::random([len], Distribution::Normal(0.0, 1.0), &device);
            // `src` stays referenced, so every product is a fresh buffer: one read, one write.
            let stats = per_call(&device, &c.timing, || {
                let _ = src.clone() * 1.0;
            })?;
            let diff = to_host((src.clone() * 1.0 - src.clone()).abs().max())[0];
            row.check("max_abs_diff", diff);
            ensure(diff == 0.0, || format!("the copy differs by {diff}"))?;
            let bytes = 2.0 * (len * 4) as f64;
            row.work(0.0, bytes);
            row.timed(stats, bytes / 1e9, "GB/s(r+w)");
            Ok(())
        },
    )
}

/// Samples of the CNN rows: Zhu et al.'s Fig. 2 training set (1000 images and 200 with random
/// labels), whose full-batch step is the unit of that campaign's cost.
const CNN_SAMPLES: usize = 1200;

/// CNN: the `convyu` net (conv 5×5 1→10, pool, ReLU, conv 5×5 10→10, pool, ReLU, dense
/// 160→50→10, cross-entropy) on 1200 images of the pool read as 28×28: one full-batch GD step
/// (lr 0.1) and one Hessian-vector product (the unit of `hessian-k`'s Lanczos and of the
/// probes). noisescope only: the anchor has no such row. Checks: a finite loss after the
/// steps, and the symmetry uᵀHv = vᵀHu.
pub fn cnn(c: &Ctx, r: &mut Recorder) -> Result<()> {
    let n = CNN_SAMPLES.min(c.pool.n);
    let device = c.opened.device.clone();
    let net = ModelSpec::Convyu.build(&device, Precision::F32)?;
    let data = net.adapt(DeviceDataset::upload(
        &slice(&c.pool, 0, n),
        &device,
        Precision::F32,
    ));
    let theta0 = Init::TorchDefault.tensor(&net.layout, c.seed, &device, Precision::F32);
    let params_str = format!("convyu N={n} ce");
    r.row(
        "CNN",
        "gd step (full batch)",
        json!({"model": "convyu", "n": n, "opt": "GD lr=0.1"}),
        &params_str,
        |row| {
            let mut theta = theta0.clone();
            let mut opt = Optimizer::new(
                OptimizerConfig {
                    lr: c.sizes.lr,
                    ..Default::default()
                },
                u64::MAX,
            );
            let loss_first = net.loss(&theta, &data);
            let mut steps = 0;
            let stats = per_call(&device, &c.timing, || {
                let (_, g) = net.gradient(&theta, &data);
                theta = opt.step(theta.clone(), g);
                steps += 1;
            })?;
            let loss_after = net.loss(&theta, &data);
            row.check("loss_first", loss_first);
            row.check("loss_after", loss_after);
            ensure(loss_after.is_finite(), || {
                format!("the loss is {loss_after} after {steps} steps")
            })?;
            row.note("steps_timed", steps);
            row.timed(stats, n as f64, "samples/s");
            Ok(())
        },
    )?;
    r.row(
        "CNN",
        "hvp R-op",
        json!({"model": "convyu", "n": n}),
        &params_str,
        |row| {
            let dim = net.dim();
            let uv = random_directions(
                2,
                dim,
                ProbeKind::Gaussian,
                c.seed + 7,
                &device,
                theta0.dtype(),
            );
            let v = uv.clone().narrow(0, 1, 1);
            let stats = per_call(&device, &c.timing, || {
                let _ = net.hvp(&theta0, &data, &v);
            })?;
            let h = to_host(net.hvp(&theta0, &data, &uv));
            let x = to_host(uv);
            let (hu, hv) = h.split_at(dim);
            let (u, v) = x.split_at(dim);
            let (uhv, vhu) = (dot(u, hv), dot(v, hu));
            let asym = (uhv - vhu).abs() / (uhv.abs() + vhu.abs()).max(1e-12);
            row.check("uHv", uhv);
            row.check("vHu", vhu);
            row.check("asymmetry", asym);
            ensure(asym < 1e-3, || {
                format!("uᵀHv = {uhv:.6e} but vᵀHu = {vhu:.6e}")
            })?;
            row.timed(stats, 1.0, "HVP/s");
            Ok(())
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_are_written_as_python_does() {
        assert_eq!(python_exp(1e-6), "1e-06");
        assert_eq!(python_exp(2.5e-7), "2.5e-07");
        assert_eq!(python_exp(1e-12), "1e-12");
    }

    #[test]
    fn parameter_counts_match_the_anchor() {
        assert_eq!(params_of(2048), 1_628_170);
        assert_eq!(params_of(512), 407_050);
        assert_eq!(params_of(16), 12_730);
    }
}
