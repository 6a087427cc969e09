//! W2: Hessian-vector products, checked against finite differences.

use super::*;

/// The f64 finite-difference check of the R-op on a 784–16–10 net with N = 32 (on the CPU in
/// f64, where the reference lives), and the bench device's f32 HVP against it.
fn hvp_fd_check(c: &Ctx, r: &mut Recorder, model: Model) -> Result<()> {
    let (d, n, eps) = (c.sizes.tiny_d, c.sizes.tiny_n, c.sizes.fd_eps);
    let arch = model.arch(d);
    let params = json!({"model": model.tag(), "d": d, "N": n, "eps": eps});
    let params_str = format!("({}) {arch} N={n} eps={}", model.tag(), python_exp(eps));
    r.row("W2", "hvp fd_check(float64)", params, &params_str, |row| {
            let reference = Problem::on(c, model, d, n, c.seed + 7, &c.target.reference, Precision::F64)?;
        let dim = reference.dim();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(c.seed + 11);
        let mut v: Vec<f64> = (0..dim).map(|_| StandardNormal.sample(&mut rng)).collect();
        let nv = norm(&v);
        v.iter_mut().for_each(|x| *x /= nv);
        let theta = to_host(reference.theta.clone());
        let f64_dt = Precision::F64.dtype();
        let shifted = |s: f64| -> Vec<f64> {
            let th: Vec<f64> = theta.iter().zip(&v).map(|(t, u)| t + s * eps * u).collect();
            let th = to_device(th, 1, dim, &c.target.reference, f64_dt).reshape([dim]);
            to_host(reference.net.gradient(&th, &reference.data).1)
        };
        let (gp, gm) = (shifted(1.0), shifted(-1.0));
        let fd: Vec<f64> = gp.iter().zip(&gm).map(|(p, m)| (p - m) / (2.0 * eps)).collect();
        let vt = to_device(v.clone(), 1, dim, &c.target.reference, f64_dt);
        let hv64 = to_host(reference.net.hvp(&reference.theta, &reference.data, &vt));
        // The bench device, f32, same θ and v.
        let device = &c.target.device;
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

/// W2: full-batch HVPs of both models at each N: one direction per pass, a block of
/// `sizes.block` per pass (timed per direction), and a gradient for scale.
pub fn w2(c: &Ctx, r: &mut Recorder) -> Result<()> {
    for model in [Model::A, Model::B] {
        hvp_fd_check(c, r, model)?;
        for n in c.sizes.w2_ns.clone() {
            let p = Problem::new(c, model, n, c.seed + 1)?;
            let d = p.dim();
            let device = c.target.device.clone();
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
                let stats = per_call(&device, &c.timing, || p.net.hvp(&p.theta, &p.data, &v))?;
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
                    let stats = per_call(&device, &c.timing, || p.net.hvp(&p.theta, &p.data, &vk))?;
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
                    let stats = per_call(&device, &c.timing, || p.net.gradient(&p.theta, &p.data))?;
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
