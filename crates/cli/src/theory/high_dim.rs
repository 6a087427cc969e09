//! SPEC §5.8, Ziyin et al. Thm. 6 (their Fig. 6, left): SGD on a fixed training set of
//! N = αD Gaussian samples with label noise; the stationary Tr[ÂΣ] = E[(w − w*)ᵀ Â (w − w*)]
//! around the least-squares solution w* (the minimum-norm interpolant when α < 1), with
//! Â = XᵀX/N the training loss's Hessian, against α, Thm. 6 and both Hessian approximations.

use anyhow::{Result, bail};
use burn::prelude::*;
use noisescope_data::transfer::to_host;
use noisescope_noise::{ChainData, LinearChains};
use noisescope_probe::linalg::symmetric_eigen;
use noisescope_theory::{
    Matrix, continuous_time_trace, finite_data_trace, hessian_approximation_trace,
    thm6_gaussian_trace, thm6_trace,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::sim::{Simulation, bar, mean_se};
use super::{Context, Report, Table, num, pm, rel};
use crate::draw::{Panel, Points, Series};

/// The experiment's settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Input dimension D (x ~ N(0, I_D)).
    pub dim: usize,
    pub lr: f64,
    pub batch: usize,
    pub label_std: f64,
    /// α = N/D values; N is rounded to the nearest integer.
    pub alphas: Vec<f64>,
    /// Burn-in is at least `simulation.burn_in` and at least this many relaxation times
    /// 1/(λ a_min) of the slowest mode (a_min: Â's smallest non-zero eigenvalue).
    pub relaxation_times: f64,
    /// Upper limit on the burn-in, whatever the relaxation time.
    pub max_burn_in: usize,
    /// Independent training sets per α, each trained by chains/datasets chains; the
    /// standard errors are taken across sets, so they include the data's own variation.
    pub datasets: usize,
    pub simulation: Simulation,
}

/// One training set: x ~ N(0, I), y = uᵀx + σε, with Â = XᵀX/N, the least-squares (for
/// N < D minimum-norm) solution w* = Â⁺Xᵀy/N, Â's smallest non-zero eigenvalue and the
/// residual variance 2L(w*) = ‖y − Xw*‖²/N.
struct Dataset {
    x: Vec<f64>,
    y: Vec<f64>,
    a_hat: Vec<f64>,
    w_star: Vec<f64>,
    a_min: f64,
    residual: f64,
}

impl Dataset {
    fn draw(n: usize, d: usize, u: &[f64], std: f64, normal: &mut impl FnMut() -> f64) -> Self {
        let x: Vec<f64> = (0..n * d).map(|_| normal()).collect();
        let y: Vec<f64> = (0..n)
            .map(|i| (0..d).map(|j| x[i * d + j] * u[j]).sum::<f64>() + std * normal())
            .collect();
        let mut a_hat = vec![0.0; d * d];
        for i in 0..n {
            let row = &x[i * d..(i + 1) * d];
            for (p, xp) in row.iter().enumerate() {
                for (q, xq) in row.iter().enumerate() {
                    a_hat[p * d + q] += xp * xq / n as f64;
                }
            }
        }
        let xty: Vec<f64> = (0..d)
            .map(|j| (0..n).map(|i| x[i * d + j] * y[i]).sum::<f64>() / n as f64)
            .collect();
        let (vals, vecs) = symmetric_eigen(&a_hat, d);
        let cut = 1e-9 * vals[0].max(1e-300);
        let mut w_star = vec![0.0; d];
        for (r, &lam) in vals.iter().enumerate().filter(|(_, l)| **l > cut) {
            let v = &vecs[r * d..(r + 1) * d];
            let c = v.iter().zip(&xty).map(|(a, b)| a * b).sum::<f64>() / lam;
            for (w, vi) in w_star.iter_mut().zip(v) {
                *w += c * vi;
            }
        }
        let a_min = vals
            .iter()
            .copied()
            .filter(|&v| v > cut)
            .fold(f64::INFINITY, f64::min);
        let residual = (0..n)
            .map(|i| {
                let f: f64 = (0..d).map(|j| x[i * d + j] * w_star[j]).sum();
                (y[i] - f).powi(2)
            })
            .sum::<f64>()
            / n as f64;
        Dataset {
            x,
            y,
            a_hat,
            w_star,
            a_min,
            residual,
        }
    }
}

impl super::Checked for Settings {
    fn check(&self) -> Result<()> {
        self.simulation.check()?;
        super::at_least("batch", self.batch, 1)?;
        super::at_least("datasets", self.datasets, 1)?;
        if self.alphas.is_empty() || self.dim == 0 {
            bail!("alphas and dim must be non-empty");
        }
        let (k, sets) = (self.simulation.chains, self.datasets);
        if k % sets != 0 || k / sets < 2 {
            bail!(
                "simulation.chains ({k}) must be a multiple of datasets ({sets}), with at least 2 chains per set"
            );
        }
        Ok(())
    }
}

pub fn run(s: &Settings, ctx: &Context) -> Result<Report> {
    let device = &ctx.opened.device;
    let p = s.simulation.precision;
    device.seed(s.simulation.seed);
    let (d, k, sb, sigma2) = (
        s.dim,
        s.simulation.chains,
        s.batch as f64,
        s.label_std * s.label_std,
    );
    let mut rng = ChaCha8Rng::seed_from_u64(s.simulation.seed);
    let mut normal = || -> f64 { StandardNormal.sample(&mut rng) };
    let teacher: Vec<f64> = (0..d).map(|_| normal() / (d as f64).sqrt()).collect();
    let mut table = Table::new(&[
        "α",
        "N",
        "burn-in",
        "measured Tr[ÂΣ] ± s.e.",
        "Thm. 6",
        "rel. error",
        "Thm. 6, own residual",
        "paired rel. error",
        "exact for the set",
        "paired rel. error vs exact",
        "Thm. 6 with (1 + 1/S), own residual",
        "Hessian approx. (discrete)",
        "continuous time",
    ]);
    let mut rows = Vec::new();
    let mut measured = Points {
        name: "measured".into(),
        points: vec![],
        color: Some(0),
    };
    let (mut c_thm, mut c_hess, mut c_cont, mut c_exact) = (vec![], vec![], vec![], vec![]);
    for &alpha in &s.alphas {
        let n = ((alpha * d as f64).round() as usize).max(1);
        let sets = s.datasets;
        let per = k / sets;
        let (mut xs, mut ys, mut a_chain, mut centers) = (vec![], vec![], vec![], vec![]);
        let (mut t6, mut plug, mut th, mut tc, mut burn) = (vec![], vec![], vec![], vec![], 0);
        let (mut exact, mut gauss) = (vec![], vec![]);
        for _ in 0..sets {
            let set = Dataset::draw(n, d, &teacher, s.label_std, &mut normal);
            let am = Matrix::new(d, d, set.a_hat.clone());
            let thm = thm6_trace(&am, s.lr, sigma2, sb, alpha).ok();
            // Thm. 6's σ²(1 − 1/α) is the expected residual variance 2L(w*); the plug-in
            // uses this training set's own.
            let expected = sigma2 * (1.0 - 1.0 / alpha);
            t6.push(thm);
            plug.push(thm.map(|v| {
                if expected > 0.0 {
                    v * set.residual / expected
                } else {
                    v
                }
            }));
            // The set's exact stationary value (no approximation of the noise), and Thm. 6
            // with the Gaussian fourth moment kept, on the set's own residual.
            let residuals: Vec<f64> = (0..n)
                .map(|i| {
                    let f: f64 = (0..d).map(|j| set.x[i * d + j] * set.w_star[j]).sum();
                    set.y[i] - f
                })
                .collect();
            exact.push(
                finite_data_trace(&Matrix::new(n, d, set.x.clone()), &residuals, s.lr, sb).ok(),
            );
            gauss.push(
                thm6_gaussian_trace(&am, s.lr, sigma2, sb, alpha)
                    .ok()
                    .map(|v| {
                        if expected > 0.0 {
                            v * set.residual / expected
                        } else {
                            v
                        }
                    }),
            );
            th.push(hessian_approximation_trace(&am, s.lr, sigma2, sb).ok());
            tc.push(continuous_time_trace(&am, s.lr, sigma2, sb));
            burn = burn.max(
                ((s.relaxation_times / (s.lr * set.a_min)).ceil() as usize)
                    .max(s.simulation.burn_in)
                    .min(s.max_burn_in),
            );
            for _ in 0..per {
                a_chain.extend_from_slice(&set.a_hat);
                centers.extend_from_slice(&set.w_star);
            }
            xs.extend(set.x);
            ys.extend(set.y);
        }
        let opts = (device, p.dtype());
        let data = ChainData::Finite {
            x: Tensor::from_data(TensorData::new(xs, [sets * n, d]), opts),
            y: Tensor::from_data(TensorData::new(ys, [sets * n, 1]), opts),
            sets,
        };
        let mut chains = LinearChains::new(
            data,
            s.batch,
            0.0,
            &vec![s.lr; k],
            &vec![0.0; k],
            Tensor::zeros([k, d], opts),
        );
        // Each chain's own Â and w*, [K, D, D] and [K, D].
        let a_dev: Tensor<3> = Tensor::from_data(TensorData::new(a_chain, [k, d, d]), opts);
        let center: Tensor<2> = Tensor::from_data(TensorData::new(centers, [k, d]), opts);
        let b = bar(
            ctx.quiet,
            burn + s.simulation.steps,
            &format!("α = {alpha}"),
        );
        for _ in 0..burn {
            chains.step();
            b.inc(1);
        }
        let mut q = vec![0.0; k];
        let mut left = s.simulation.steps;
        while left > 0 {
            let m = left.min(s.simulation.block.max(1));
            let mut acc = Tensor::<1>::zeros([k], opts);
            for _ in 0..m {
                chains.step();
                let e = chains.w().clone() - center.clone();
                let ea = e
                    .clone()
                    .unsqueeze_dim::<3>(1)
                    .matmul(a_dev.clone())
                    .reshape([k, d]);
                acc = acc + (ea * e).sum_dim(1).reshape([k]);
            }
            for (a, v) in q.iter_mut().zip(to_host(acc)) {
                *a += v;
            }
            left -= m;
            b.inc(m as u64);
        }
        b.finish_and_clear();
        q.iter_mut()
            .for_each(|v| *v /= s.simulation.steps.max(1) as f64);
        // One value per training set (its chains' mean); the spread across sets is the error.
        let per_set: Vec<f64> = (0..sets)
            .map(|r| q[r * per..(r + 1) * per].iter().sum::<f64>() / per as f64)
            .collect();
        let stat = mean_se(&per_set);
        let avg = |v: &[Option<f64>]| -> Option<f64> {
            let x: Option<Vec<f64>> = v.iter().copied().collect();
            x.map(|x| x.iter().sum::<f64>() / x.len() as f64)
        };
        let (t6m, plugm, thm_) = (avg(&t6), avg(&plug), avg(&th));
        let tcm = tc.iter().sum::<f64>() / sets as f64;
        // Paired with each set's plug-in value: (measured − plug-in)/plug-in per set.
        let paired: Option<Vec<f64>> = per_set
            .iter()
            .zip(&plug)
            .map(|(m, p)| p.filter(|p| *p > 0.0).map(|p| (m - p) / p))
            .collect();
        let paired = paired.and_then(|v| mean_se(&v));
        let (exactm, gaussm) = (avg(&exact), avg(&gauss));
        let paired_exact: Option<Vec<f64>> = per_set
            .iter()
            .zip(&exact)
            .map(|(m, x)| x.filter(|x| *x > 0.0).map(|x| (m - x) / x))
            .collect();
        let paired_exact = paired_exact.and_then(|v| mean_se(&v));
        table.row(vec![
            num(Some(alpha)),
            n.to_string(),
            burn.to_string(),
            stat.map_or("diverged".into(), |(m, se)| pm(m, se)),
            num(t6m),
            stat.map_or("–".into(), |(m, se)| rel(m, se, t6m)),
            num(plugm),
            paired.map_or("–".into(), |(m, se)| {
                format!("{:+.2}% ± {:.2}%", 100.0 * m, 100.0 * se)
            }),
            num(exactm),
            paired_exact.map_or("–".into(), |(m, se)| {
                format!("{:+.2}% ± {:.2}%", 100.0 * m, 100.0 * se)
            }),
            num(gaussm),
            num(thm_),
            num(Some(tcm)),
        ]);
        if let Some((m, se)) = stat {
            measured.points.push((alpha, m, se));
        }
        c_thm.push((alpha, t6m.unwrap_or(f64::NAN)));
        c_hess.push((alpha, thm_.unwrap_or(f64::NAN)));
        c_cont.push((alpha, tcm));
        c_exact.push((alpha, exactm.unwrap_or(f64::NAN)));
        rows.push(json!({
            "alpha": alpha, "n": n, "datasets": sets, "burn_in": burn,
            "measured": stat.map(|x| x.0), "se": stat.map(|x| x.1), "per_set": per_set,
            "thm6": t6m, "thm6_per_set": t6, "thm6_plug_in": plug,
            "paired_rel_err": paired.map(|x| x.0), "paired_rel_se": paired.map(|x| x.1),
            "hessian_approximation": thm_, "continuous_time": tcm,
            "exact": exactm, "exact_per_set": exact,
            "paired_rel_err_exact": paired_exact.map(|x| x.0), "paired_rel_se_exact": paired_exact.map(|x| x.1),
            "thm6_gaussian_plug_in": gaussm, "thm6_gaussian_per_set": gauss,
        }));
    }
    let mut curves = vec![
        Series::new("Thm. 6", c_thm),
        Series::new("Hessian approx. (discrete)", c_hess),
        Series::new("continuous time", c_cont),
        Series::new("exact for the training sets", c_exact),
    ];
    for (i, c) in curves.iter_mut().enumerate() {
        c.color = Some(i + 1);
    }
    Ok(Report {
        summary: json!({
            "dim": d, "lr": s.lr, "batch": s.batch, "label_std": s.label_std,
            "simulation": s.simulation, "rows": rows,
        }),
        table: format!(
            "{}\nEach α has its own training sets; the closed forms are evaluated at each set's Â and averaged (so the curves join those points). \"Own residual\" replaces Thm. 6's σ²(1 − 1/α), the expected 2L(w*), by the set's realized 2L(w*); the paired error compares each set with its own plug-in value. \"Exact for the set\" solves the set's second-moment recursion with nothing approximated (`theory::finite_data_trace`); \"Thm. 6 with (1 + 1/S)\" keeps the Gaussian fourth moment that Thm. 6 drops.\n",
            table.render()
        ),
        panels: vec![Panel {
            title: format!("D = {d}, λ = {}, S = {}", s.lr, s.batch),
            x_label: "α = N/D".into(),
            y_label: "Tr[ÂΣ]".into(),
            log_x: true,
            log_y: false,
            curves,
            points: vec![measured],
            vlines: vec![1.0],
            jitter: 0.0,
            legend_low: false,
            x_ticks: vec![],
        }],
    })
}
