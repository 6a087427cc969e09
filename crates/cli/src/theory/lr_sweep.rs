//! SPEC §5.6, Ziyin et al. Fig. 3 (left): the stationary variance of 1-d label-noise SGD
//! against the learning rate λ, measured with one group of chains per λ (all λ in a single
//! device computation), against Thm. 2 and both Hessian approximations.

use anyhow::{Result, bail};
use noisescope_data::transfer::vector;
use noisescope_noise::LinearChains;
use noisescope_theory::{
    Matrix, continuous_time_sigma, hessian_approximation_sigma, kesten_tail_index, thm2_sigma,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::sim::{Simulation, mean_se, repeat_each, stationary_moments};
use super::{Context, Report, Table, num, pm, rel};
use crate::draw::{Panel, Points, Series};

/// The experiment's settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Curvature a (1-d).
    pub hessian: f64,
    pub batch: usize,
    pub label_std: f64,
    /// The learning rates.
    pub lrs: Vec<f64>,
    pub simulation: Simulation,
}

impl super::Checked for Settings {
    fn check(&self) -> Result<()> {
        self.simulation.check()?;
        super::at_least("batch", self.batch, 1)?;
        if self.lrs.is_empty() {
            bail!("lrs: give at least one learning rate");
        }
        Ok(())
    }
}

pub fn run(s: &Settings, ctx: &Context) -> Result<Report> {
    let device = &ctx.opened.device;
    let p = s.simulation.precision;
    device.seed(s.simulation.seed);
    let (a, sb, sigma2) = (s.hessian, s.batch as f64, s.label_std * s.label_std);
    let k = s.simulation.chains;
    let lrs = repeat_each(&s.lrs, k);
    let mut chains = LinearChains::one_d(
        (a, 0.0, s.label_std),
        s.batch,
        &lrs,
        &vec![0.0; lrs.len()],
        device,
        p.dtype(),
    );
    let m = stationary_moments(
        &mut chains,
        &vector(&[0.0], device, p.dtype()),
        &s.simulation,
        ctx.quiet,
        "λ sweep",
    );
    let am = Matrix::scalar(a);
    let thm2 = |lr: f64| {
        thm2_sigma(&am, &Matrix::scalar(lr), 0.0, sigma2, sb)
            .ok()
            .map(|x| x.at(0, 0))
    };
    let hess = |lr: f64| {
        hessian_approximation_sigma(&am, &Matrix::scalar(lr), 0.0, sigma2, sb)
            .ok()
            .map(|x| x.at(0, 0))
    };
    let cont = |lr: f64| continuous_time_sigma(1, lr, 0.0, sigma2, sb).at(0, 0);
    let mut table = Table::new(&[
        "λ",
        "measured Σ ± s.e.",
        "Thm. 2",
        "rel. error",
        "Hessian approx. (discrete)",
        "continuous time",
        "tail index κ",
    ]);
    let mut rows = Vec::new();
    let mut measured = Points {
        name: "measured".into(),
        points: vec![],
        color: Some(0),
    };
    for (g, &lr) in s.lrs.iter().enumerate() {
        let v: Vec<f64> = (g * k..(g + 1) * k).map(|c| m.sigma(c, 0, 0)).collect();
        let stat = mean_se(&v).filter(|_| m.settled(g * k..(g + 1) * k, 100.0));
        let t = thm2(lr);
        let kappa = kesten_tail_index(a, lr, s.batch);
        table.row(vec![
            num(Some(lr)),
            stat.map_or("diverged".into(), |(mm, se)| pm(mm, se)),
            t.map_or("no stationary Σ".into(), |v| num(Some(v))),
            stat.map_or("–".into(), |(mm, se)| rel(mm, se, t)),
            num(hess(lr)),
            num(Some(cont(lr))),
            num(kappa),
        ]);
        if let Some((mm, se)) = stat {
            measured.points.push((lr, mm, se));
        }
        rows.push(json!({
            "lr": lr, "measured": stat.map(|x| x.0), "se": stat.map(|x| x.1), "thm2": t,
            "rel_err": match (stat, t) { (Some((mm, _)), Some(t)) => Some((mm - t) / t), _ => None },
            "hessian_approximation": hess(lr), "continuous_time": cont(lr), "kesten_tail_index": kappa,
        }));
    }
    // Curves on a fine grid up to past the largest λ; Thm. 2 breaks off where Σ stops existing.
    let top = s.lrs.iter().cloned().fold(0.0, f64::max) * 1.1;
    let grid: Vec<f64> = (1..=400).map(|i| top * i as f64 / 400.0).collect();
    let boundary = grid.iter().copied().find(|&l| thm2(l).is_none());
    let curve = |name: &str, f: &dyn Fn(f64) -> Option<f64>, color: usize| {
        let mut c = Series::new(
            name,
            grid.iter()
                .map(|&l| (l, f(l).unwrap_or(f64::NAN)))
                .collect(),
        );
        c.color = Some(color);
        c
    };
    let mut text = table.render();
    if let Some(b) = boundary {
        text += &format!(
            "\nThm. 2 has no stationary Σ from λ ≈ {b:.3} on (dashed line); κ is the Kesten–Goldie tail index of the stationary law (Σ is finite for κ > 2, its estimator has finite variance only for κ > 4).\n"
        );
    }
    Ok(Report {
        summary: json!({
            "hessian": a, "batch": s.batch, "label_std": s.label_std, "simulation": s.simulation,
            "thm2_boundary": boundary, "rows": rows,
        }),
        table: text,
        panels: vec![Panel {
            title: format!("1-d label noise, a = {a}, S = {}", s.batch),
            x_label: "learning rate λ".into(),
            y_label: "stationary variance Σ".into(),
            log_x: false,
            log_y: true,
            curves: vec![
                curve("Thm. 2", &thm2, 1),
                curve("Hessian approx. (discrete)", &hess, 2),
                curve("continuous time", &|l| Some(cont(l)), 3),
            ],
            points: vec![measured],
            vlines: boundary.into_iter().collect(),
            jitter: 0.0,
            legend_low: false,
            x_ticks: vec![],
        }],
    })
}
