//! SPEC §5.7, Ziyin et al. Thm. 4 / Cor. 1 (their Fig. 5): the stationary test loss
//! ½E[a(w − u)²] of 1-d SGD with weight decay γ and noiseless labels, against γ, with the
//! boundaries where Thm. 4 says it diverges. At large λ the finite window lies entirely at
//! γ < 0, so the optimal weight decay is negative; without SGD's noise (GD, or the Hessian
//! approximation, whose C vanishes with the label noise) the optimum is γ = 0. Fig. 5's other
//! panel holds γ fixed and varies λ: the loss grows with λ up to the rate where Thm. 4
//! diverges, and a negative γ moves that rate up.

use anyhow::{Result, bail};
use noisescope_data::transfer::vector;
use noisescope_noise::LinearChains;
use noisescope_theory::{Matrix, noiseless_test_loss, thm4_test_loss};
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
    /// The teacher u (labels y = ux, no noise).
    pub teacher: f64,
    pub batch: usize,
    pub simulation: Simulation,
    /// One figure panel per learning rate, sweeping γ.
    pub panels: Vec<LrPanel>,
    /// One figure panel per weight decay, sweeping λ (Fig. 5's other panel).
    #[serde(default)]
    pub lr_panels: Vec<GammaPanel>,
}

/// A learning rate and the weight decays simulated at it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LrPanel {
    pub lr: f64,
    pub gammas: Vec<f64>,
}

/// A weight decay and the learning rates simulated at it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GammaPanel {
    pub gamma: f64,
    pub lrs: Vec<f64>,
}

/// One panel's sweep: the varied quantity's values at a fixed other one.
enum Sweep<'a> {
    /// γ varies at a fixed λ.
    Gamma { lr: f64, gammas: &'a [f64] },
    /// λ varies at a fixed γ.
    Lr { gamma: f64, lrs: &'a [f64] },
}

impl Sweep<'_> {
    /// The swept values.
    fn xs(&self) -> &[f64] {
        match self {
            Sweep::Gamma { gammas, .. } => gammas,
            Sweep::Lr { lrs, .. } => lrs,
        }
    }

    /// (λ, γ) at swept value x.
    fn point(&self, x: f64) -> (f64, f64) {
        match *self {
            Sweep::Gamma { lr, .. } => (lr, x),
            Sweep::Lr { gamma, .. } => (x, gamma),
        }
    }

    /// The swept quantity's symbol and the fixed one as text.
    fn names(&self) -> (&'static str, String) {
        match self {
            Sweep::Gamma { lr, .. } => ("γ", format!("λ = {lr}")),
            Sweep::Lr { gamma, .. } => ("λ", format!("γ = {gamma}")),
        }
    }
}

impl super::Checked for Settings {
    fn check(&self) -> Result<()> {
        self.simulation.check()?;
        super::at_least("batch", self.batch, 1)
    }
}

pub fn run(s: &Settings, ctx: &Context) -> Result<Report> {
    let device = &ctx.opened.device;
    let p = s.simulation.precision;
    device.seed(s.simulation.seed);
    let (a, u, sb) = (s.hessian, s.teacher, s.batch as f64);
    let am = Matrix::scalar(a);
    let theory = |lr: f64, g: f64| thm4_test_loss(&am, &Matrix::scalar(g), &[u], lr, sb).ok();
    let gd = |g: f64| noiseless_test_loss(&am, &Matrix::scalar(g), &[u]).ok();
    let k = s.simulation.chains;
    let mut table = Table::new(&[
        "λ",
        "γ",
        "measured L_test ± s.e.",
        "Thm. 4",
        "rel. error",
        "without noise (GD, Hessian approx.)",
    ]);
    let (mut panels, mut out, mut notes) = (Vec::new(), Vec::new(), String::new());
    let sweeps = s
        .panels
        .iter()
        .map(|p| Sweep::Gamma {
            lr: p.lr,
            gammas: &p.gammas,
        })
        .chain(s.lr_panels.iter().map(|p| Sweep::Lr {
            gamma: p.gamma,
            lrs: &p.lrs,
        }));
    for sw in sweeps {
        let (var, fixed) = sw.names();
        let xs = sw.xs();
        if xs.is_empty() {
            bail!("panels: {fixed} has no values of {var} to sweep");
        }
        if let Some(x) = xs.iter().find(|x| !x.is_finite()) {
            bail!("panels: {fixed}: {var} = {x} is not a finite number");
        }
        let sweeps_lr = matches!(sw, Sweep::Lr { .. });
        if let Some(x) = xs.iter().find(|x| sweeps_lr && **x <= 0.0) {
            bail!("lr_panels: {fixed}: λ = {x} is not a positive learning rate");
        }
        let points: Vec<(f64, f64)> = xs.iter().map(|&x| sw.point(x)).collect();
        let lrs = repeat_each(&points.iter().map(|p| p.0).collect::<Vec<_>>(), k);
        let gammas = repeat_each(&points.iter().map(|p| p.1).collect::<Vec<_>>(), k);
        // Noiseless labels; from w = 0 (started at u, SGD without decay would never move).
        let mut chains =
            LinearChains::one_d((a, u, 0.0), s.batch, &lrs, &gammas, device, p.dtype());
        let m = stationary_moments(
            &mut chains,
            &vector(&[u], device, p.dtype()),
            &s.simulation,
            ctx.quiet,
            &format!("{var} sweep at {fixed}"),
        );
        let mut measured = Points {
            name: "measured".into(),
            points: vec![],
            color: Some(0),
        };
        let mut rows = Vec::new();
        for (j, (&x, &(lr, g))) in xs.iter().zip(&points).enumerate() {
            let v: Vec<f64> = (j * k..(j + 1) * k)
                .map(|c| 0.5 * a * m.sigma(c, 0, 0))
                .collect();
            // A chain that left f32's range counts as diverged, and so does a group whose
            // loss still grows by orders of magnitude over the measured steps.
            let stat = mean_se(&v).filter(|_| m.settled(j * k..(j + 1) * k, 100.0));
            let t = theory(lr, g);
            table.row(vec![
                num(Some(lr)),
                num(Some(g)),
                stat.map_or("diverged".into(), |(mm, se)| pm(mm, se)),
                t.map_or("∞ (diverges)".into(), |v| num(Some(v))),
                stat.map_or("–".into(), |(mm, se)| rel(mm, se, t)),
                num(gd(g)),
            ]);
            // Where Thm. 4 diverges the sample mean is not an estimate of anything (the table
            // still shows it); the figure leaves it out so the finite window stays readable.
            if let (Some((mm, se)), Some(_)) = (stat, t) {
                measured.points.push((x, mm, se));
            }
            rows.push(json!({
                "lr": lr, "gamma": g, "measured": stat.map(|x| x.0), "se": stat.map(|x| x.1),
                "thm4": t, "noiseless": gd(g),
            }));
        }
        // Thm. 4 on a fine grid: its finite windows, their edges and the optimum.
        let lo = xs.iter().cloned().fold(f64::INFINITY, f64::min);
        let hi = xs.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let (mut lo, hi) = (lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo));
        if sweeps_lr {
            lo = lo.max(0.0);
        }
        let grid: Vec<f64> = (0..=1000)
            .map(|i| lo + (hi - lo) * i as f64 / 1000.0)
            .collect();
        let at = |x: f64| {
            let (lr, g) = sw.point(x);
            theory(lr, g)
        };
        let values: Vec<Option<f64>> = grid.iter().map(|&x| at(x)).collect();
        let edges: Vec<f64> = (1..grid.len())
            .filter(|&i| values[i].is_some() != values[i - 1].is_some())
            .map(|i| 0.5 * (grid[i] + grid[i - 1]))
            .collect();
        let optimum = grid
            .iter()
            .zip(&values)
            .filter_map(|(x, v)| v.map(|v| (*x, v)))
            .min_by(|x, y| x.1.total_cmp(&y.1));
        let best_measured = measured
            .points
            .iter()
            .min_by(|x, y| x.1.total_cmp(&y.1))
            .map(|p| p.0);
        notes += &format!(
            "- {fixed}: Thm. 4 is finite for {var} in {} (a square bracket is the edge of the simulated range); its optimum is {var}* = {} (L_test = {}); the smallest measured loss where Thm. 4 is finite is at {var} = {}.\n",
            windows(&grid, &values),
            num(optimum.map(|o| o.0)),
            num(optimum.map(|o| o.1)),
            num(best_measured),
        );
        let mut t_curve = Series::new(
            "Thm. 4",
            grid.iter()
                .zip(&values)
                .map(|(x, v)| (*x, v.unwrap_or(f64::NAN)))
                .collect(),
        );
        t_curve.color = Some(1);
        let mut gd_curve = Series::new(
            "without noise",
            grid.iter()
                .map(|&x| (x, gd(sw.point(x).1).unwrap_or(f64::NAN)))
                .collect(),
        );
        gd_curve.color = Some(2);
        gd_curve.dashed = true;
        panels.push(Panel {
            title: format!("{fixed}, S = {}, a = {a}", s.batch),
            x_label: if sweeps_lr {
                "learning rate λ".into()
            } else {
                "weight decay γ".into()
            },
            y_label: "test loss".into(),
            log_x: false,
            log_y: true,
            curves: vec![t_curve, gd_curve],
            points: vec![measured],
            vlines: edges.clone(),
            jitter: 0.0,
            legend_low: false,
            x_ticks: vec![],
        });
        let mut entry = json!({ "rows": rows, "divergence_boundaries": edges });
        match sw {
            Sweep::Gamma { lr, .. } => {
                entry["lr"] = json!(lr);
                entry["optimal_gamma"] = json!(optimum.map(|o| o.0));
                entry["best_measured_gamma"] = json!(best_measured);
            }
            Sweep::Lr { gamma, .. } => {
                entry["gamma"] = json!(gamma);
                entry["optimal_lr"] = json!(optimum.map(|o| o.0));
                entry["best_measured_lr"] = json!(best_measured);
            }
        }
        entry["optimal_loss"] = json!(optimum.map(|o| o.1));
        out.push(entry);
    }
    Ok(Report {
        summary: json!({
            "hessian": a, "teacher": u, "batch": s.batch, "simulation": s.simulation, "panels": out,
        }),
        table: format!("{}\n{notes}", table.render()),
        panels,
    })
}

/// The intervals of the grid where the closed form is finite, as text.
fn windows(grid: &[f64], values: &[Option<f64>]) -> String {
    let mut parts = Vec::new();
    let mut start: Option<f64> = None;
    for (i, (g, v)) in grid.iter().zip(values).enumerate() {
        match (v.is_some(), start) {
            (true, None) => start = Some(*g),
            (false, Some(s0)) if s0 == grid[0] => {
                parts.push(format!("[{s0:.3}, {:.3})", grid[i - 1]));
                start = None;
            }
            (false, Some(s0)) => {
                parts.push(format!("({s0:.3}, {:.3})", grid[i - 1]));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s0) = start {
        let open = if s0 == grid[0] { '[' } else { '(' };
        parts.push(format!("{open}{s0:.3}, {:.3}]", grid[grid.len() - 1]));
    }
    if parts.is_empty() {
        "no γ of the range".into()
    } else {
        parts.join(" ∪ ")
    }
}
