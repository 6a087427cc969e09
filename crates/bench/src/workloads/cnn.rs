//! CNN: the convyu net on 1200 images, a step and a symmetric HVP.

use super::*;

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
    let device = c.target.device.clone();
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
            let stats = per_call(&device, &c.timing, || net.hvp(&theta0, &data, &v))?;
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
