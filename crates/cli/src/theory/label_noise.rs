//! SPEC §5.6, Ziyin et al. Thms. 2–3 (their Figs. 3–4): the stationary Σ = E[(w − u)(w − u)ᵀ]
//! and gradient-noise covariance C of SGD on label-noise regression, measured on K chains
//! per case and compared with Thm. 2/3, the discrete-time Hessian approximation (Thm. 1 with
//! C = (σ²/S)A) and the continuous-time one (Σ = λσ²/(2S) I).

use anyhow::Result;
use burn::prelude::*;
use noisescope_data::transfer::vector;
use noisescope_noise::{ChainData, LinearChains};
use noisescope_theory::{
    Matrix, continuous_time_sigma, hessian_approximation_sigma, kesten_tail_index, thm2_sigma,
    thm3_c,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::sim::{Simulation, mean_se, stationary_moments};
use super::{Context, Report, Table, num, pm, rel};
use crate::draw::{Panel, Points};

/// The experiment's settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// σ, the label noise's standard deviation.
    pub label_std: f64,
    pub simulation: Simulation,
    pub cases: Vec<Case>,
}

/// One setting: A = diag(hessian), Λ = λI, batch S, momentum μ.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub name: String,
    /// The eigenvalues of A = H.
    pub hessian: Vec<f64>,
    pub lr: f64,
    pub batch: usize,
    #[serde(default)]
    pub momentum: f64,
}

impl super::Checked for Settings {
    fn check(&self) -> Result<()> {
        self.simulation.check()?;
        for (i, c) in self.cases.iter().enumerate() {
            super::at_least(&format!("cases.{i}.batch (case {})", c.name), c.batch, 1)?;
        }
        Ok(())
    }
}

pub fn run(s: &Settings, ctx: &Context) -> Result<Report> {
    let device = &ctx.opened.device;
    let p = s.simulation.precision;
    device.seed(s.simulation.seed);
    let sigma2 = s.label_std * s.label_std;
    let mut table = Table::new(&[
        "case",
        "quantity",
        "measured ± s.e.",
        "Ziyin et al. (Thm. 2/3)",
        "rel. error",
        "Hessian approx. (discrete)",
        "continuous time",
    ]);
    let mut cases = Vec::new();
    let mut panels = Vec::new();
    let mut notes = String::new();
    for case in &s.cases {
        let d = case.hessian.len();
        let k = s.simulation.chains;
        let a = Matrix::diagonal(&case.hessian);
        let lambda = Matrix::identity(d).scale(case.lr);
        let sb = case.batch as f64;
        let thm2 = thm2_sigma(&a, &lambda, case.momentum, sigma2, sb).ok();
        let thm3 = thm3_c(&a, &lambda, case.momentum, sigma2, sb).ok();
        let hess = hessian_approximation_sigma(&a, &lambda, case.momentum, sigma2, sb).ok();
        let cont = continuous_time_sigma(d, case.lr, case.momentum, sigma2, sb);
        let sqrt: Vec<f64> = case.hessian.iter().map(|v| v.sqrt()).collect();
        let data = ChainData::Gaussian {
            a_sqrt: vector(&sqrt, device, p.dtype()),
            teacher: vector(&vec![0.0; d], device, p.dtype()),
            label_std: s.label_std,
        };
        let mut chains = LinearChains::new(
            data,
            case.batch,
            case.momentum,
            &vec![case.lr; k],
            &vec![0.0; k],
            Tensor::zeros([k, d], (device, p.dtype())),
        );
        let m = stationary_moments(
            &mut chains,
            &vector(&vec![0.0; d], device, p.dtype()),
            &s.simulation,
            ctx.quiet,
            &case.name,
        );
        let diverged = m.finite.iter().filter(|f| !**f).count();
        let mut entries = Vec::new();
        let mut measured = Points {
            name: "measured".into(),
            points: vec![],
            color: Some(0),
        };
        let mut theory = Points {
            name: "Thm. 2 / 3".into(),
            points: vec![],
            color: Some(1),
        };
        let mut hessian_pts = Points {
            name: "Hessian approx.".into(),
            points: vec![],
            color: Some(2),
        };
        let mut cont_pts = Points {
            name: "continuous time".into(),
            points: vec![],
            color: Some(3),
        };
        let mut x_ticks = Vec::new();
        for (q, what) in ["Σ", "C"].iter().enumerate() {
            for i in 0..d {
                let per_chain: Vec<f64> = (0..k)
                    .map(|c| match q {
                        0 => m.sigma(c, i, i),
                        _ => m.noise(c, i, i).unwrap_or(f64::NAN),
                    })
                    .collect();
                let stat = mean_se(&per_chain).filter(|_| m.settled(0..k, 100.0));
                let (t, h, ct) = match q {
                    0 => (
                        thm2.as_ref().map(|x| x.at(i, i)),
                        hess.as_ref().map(|x| x.at(i, i)),
                        Some(cont.at(i, i)),
                    ),
                    // Both approximations take C = (σ²/S) A.
                    _ => (
                        thm3.as_ref().map(|x| x.at(i, i)),
                        Some(sigma2 / sb * case.hessian[i]),
                        Some(sigma2 / sb * case.hessian[i]),
                    ),
                };
                let label = format!("{what}_{}{}", i + 1, i + 1);
                let x = (q * d + i + 1) as f64;
                let sub: String = format!("{}{}", i + 1, i + 1)
                    .chars()
                    .map(|c| char::from_u32(0x2080 + c.to_digit(10).unwrap_or(0)).unwrap_or(c))
                    .collect();
                x_ticks.push((x, format!("{what}{sub}")));
                let (ms, ses) = match stat {
                    Some((mm, se)) => (pm(mm, se), rel(mm, se, t)),
                    None => (
                        format!("diverged or growing ({diverged} of {k} chains infinite)"),
                        "–".into(),
                    ),
                };
                table.row(vec![
                    case.name.clone(),
                    label.clone(),
                    ms,
                    t.map_or("no stationary Σ".into(), |v| num(Some(v))),
                    ses,
                    num(h),
                    num(ct),
                ]);
                // The figure shows everything relative to Thm. 2/3 (where it exists).
                if let Some(t) = t.filter(|t| *t > 0.0) {
                    if let Some((mm, se)) = stat {
                        measured.points.push((x, mm / t, se / t));
                    }
                    theory.points.push((x, 1.0, 0.0));
                    for (pts, v) in [(&mut hessian_pts, h), (&mut cont_pts, ct)] {
                        if let Some(v) = v {
                            pts.points.push((x, v / t, 0.0));
                        }
                    }
                }
                entries.push(json!({
                    "quantity": label,
                    "measured": stat.map(|s| s.0),
                    "se": stat.map(|s| s.1),
                    "theory": t,
                    "rel_err": match (stat, t) { (Some((mm, _)), Some(t)) => Some((mm - t) / t), _ => None },
                    "rel_se": match (stat, t) { (Some((_, se)), Some(t)) => Some(se / t.abs()), _ => None },
                    "hessian_approximation": h,
                    "continuous_time": ct,
                }));
            }
        }
        let kesten = (d == 1 && case.momentum == 0.0)
            .then(|| kesten_tail_index(case.hessian[0], case.lr, case.batch))
            .flatten();
        if let Some(kappa) = kesten {
            notes += &format!(
                "- {}: the stationary law has a power tail, P(|w − u| > x) ~ x^−κ with κ = {kappa:.2} (Kesten–Goldie){}\n",
                case.name,
                if kappa <= 2.0 {
                    ": Σ is infinite, and the measured value grows with the run length"
                } else if kappa <= 4.0 {
                    ": Σ is finite but its estimator has infinite variance, so the s.e. understates the error"
                } else {
                    ""
                }
            );
        }
        cases.push(json!({
            "name": case.name, "hessian": case.hessian, "lr": case.lr, "batch": case.batch,
            "momentum": case.momentum, "chains": k, "diverged_chains": diverged,
            "kesten_tail_index": kesten, "entries": entries,
        }));
        // A case without a stationary Σ has nothing to divide by: the table reports it.
        if !theory.points.is_empty() {
            panels.push(Panel {
                title: case.name.clone(),
                x_label: "diagonal entry (Σ: the weights' covariance, C: the gradient noise's)"
                    .into(),
                y_label: "value / Thm. 2 or 3".into(),
                log_x: false,
                log_y: true,
                curves: vec![],
                points: vec![measured, theory, hessian_pts, cont_pts],
                vlines: vec![],
                jitter: 0.06,
                legend_low: true,
                x_ticks,
            });
        }
    }
    let mut text = table.render();
    if !notes.is_empty() {
        text += "\n";
        text += &notes;
    }
    Ok(Report {
        summary: json!({
            "label_std": s.label_std,
            "simulation": s.simulation,
            "cases": cases,
        }),
        table: text,
        panels,
    })
}
