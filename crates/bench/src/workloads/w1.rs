//! W1: a training step of the anchor's MLPs.

use super::*;

/// W1: one SGD step (lr 0.1) of the tanh MLP 784–d–10 on a pool of 8 batches, cycled.
pub fn w1(c: &Ctx, r: &mut Recorder) -> Result<()> {
    let configs = c.sizes.w1_configs.clone();
    for (d, batch) in configs {
        for loss in c.sizes.w1_losses.clone() {
            let params =
                json!({"d": d, "batch": batch, "act": "tanh", "loss": loss, "opt": "SGD lr=0.1"});
            let params_str = format!("tanh d={d} B={batch} {loss}");
            r.row("W1", "train_step", params, &params_str, |row| {
                let device = &c.target.device;
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
