//! HW: the device's matrix-product, reduction and copy rates.

use super::*;

/// HW: the f32 matmul rate and the copy bandwidth that bound every workload.
pub fn hw(c: &Ctx, r: &mut Recorder) -> Result<()> {
    let n = c.sizes.matmul_n;
    let device = c.target.device.clone();
    let params = json!({"n": n, "allow_tf32": false});
    let params_str = format!("{n}x{n}x{n} allow_tf32=False");
    r.row("HW", "matmul f32", params, &params_str, |row| {
        let a = Tensor::<2>::random([n, n], Distribution::Normal(0.0, 1.0), &device);
        let bm = Tensor::<2>::random([n, n], Distribution::Normal(0.0, 1.0), &device);
        // The product every pass of noisescope's layers uses (on the CPU: the matrix engine).
        let product = || noisescope_models::ops::matmul(a.clone(), false, bm.clone(), false);
        let stats = per_call(&device, &c.timing, product)?;
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
                row_sums(t.clone())
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
            let stats = per_call(&device, &c.timing, || src.clone() * 1.0)?;
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
