//! W4: Lanczos for the top of the Hessian spectrum.

use super::*;

/// W4: the top-k Hessian eigenvalues of model (b) by Lanczos with full reorthogonalization.
pub fn w4(c: &Ctx, r: &mut Recorder) -> Result<()> {
    let (n, m, k) = (c.sizes.lanczos_n, c.sizes.lanczos_iters, c.sizes.lanczos_k);
    let p = Problem::new(c, Model::B, n, c.seed + 1)?;
    let d = p.dim();
    let device = c.target.device.clone();
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
