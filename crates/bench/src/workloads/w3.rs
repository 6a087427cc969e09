//! W3: per-sample gradients and the top of Σ₁.

use super::*;

/// W3: factored per-sample gradients of N samples, the top-k eigenpairs of Σ₁ from the N×N
/// Gram matrix, and diag Σ₁; both models.
pub fn w3(c: &Ctx, r: &mut Recorder, factors: &mut Factors) -> Result<()> {
    let (n, k) = (c.sizes.ps_n, c.sizes.topk);
    for model in [Model::A, Model::B] {
        let p = Problem::new(c, model, n, c.seed + 1)?;
        let d = p.dim();
        let device = c.target.device.clone();
        let width = model.width();
        let base = format!("({}) {} N={n} D={d}", model.tag(), model.arch(width));
        r.row(
            "W3",
            "per-sample grads (factored)",
            p.params(n),
            &base,
            |row| {
                let stats = per_call(&device, &c.timing, || {
                    p.net.sample_gradients(&p.theta, &p.data)
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
        let lavapipe = c.target.description.contains("llvmpipe");
        let cap = if lavapipe {
            128.0 * 1048576.0
        } else {
            2.0 * 1073741824.0
        };
        if c.target.gpu && g_bytes > cap {
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
                    p.net.sample_gradients(&p.theta, &p.data).materialize()
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
                let stats = per_call(&device, &c.timing, || noise.diagonal())?;
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
