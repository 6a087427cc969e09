//! W6: a step of the generalized Langevin dynamics with low-rank noise.

use super::*;

/// W6: one step of the leading-eigenvector GLD (`lowrank-k`: minibatch gradient plus
/// ξ = Σ_j √(c λ_j) z_j u_j with Tr C = Tr Σ₁), and the plain SGD step beside it.
pub fn w6(c: &Ctx, r: &mut Recorder, factors: &Factors) -> Result<()> {
    let (batch, k, lr) = (c.sizes.gld_batch, c.sizes.gld_k, c.sizes.lr);
    for model in [Model::B, Model::A] {
        let p = Problem::new(c, model, batch, c.seed + 1)?;
        let d = p.dim();
        let device = c.target.device.clone();
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
