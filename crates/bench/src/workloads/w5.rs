//! W5: Hutchinson and exact traces, Tr H and Tr(HΣ).

use super::*;

/// W5: Hutchinson's Tr H with P Rademacher probes, and Tr(HΣ₁) exactly from N + 1 HVPs.
pub fn w5(c: &Ctx, r: &mut Recorder) -> Result<()> {
    let (n, probes, chunk) = (c.sizes.hutch_n, c.sizes.hutch_probes, c.sizes.hvp_chunk);
    let p = Problem::new(c, Model::B, n, c.seed + 1)?;
    let d = p.dim();
    let device = c.target.device.clone();
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
