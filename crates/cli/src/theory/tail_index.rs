//! SPEC §5.9, Ziyin et al. §6.6 and App. D.3 (their Figs. 2 and 7): the tail index of 1-d
//! SGD's stationary distribution with label noise against λ and S. Measured by Hill's
//! estimator on |w − u| sampled every `thin` steps from K chains; its standard error comes
//! from the spread of the estimates on disjoint groups of chains. Compared with the paper's
//! β = 2S/(aλ) − S, the continuous-time 2S/(aλ) + 1 and the exact Kesten–Goldie index.

use anyhow::{Result, bail};
use noisescope_data::transfer::to_host;
use noisescope_noise::LinearChains;
use noisescope_probe::stats::hill_tail_index;
use noisescope_theory::{kesten_tail_index, tail_index};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::sim::{Simulation, bar, mean_se, repeat_each};
use super::{Context, Report, Table, num, pm, rel};
use crate::draw::{Panel, Points, Series};

/// The experiment's settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Curvature a.
    pub hessian: f64,
    pub label_std: f64,
    /// Steps between recorded samples of each chain.
    pub thin: usize,
    /// The fraction of largest |w − u| that Hill's estimator uses.
    pub tail_fraction: f64,
    /// Disjoint groups of chains whose estimates give the standard error.
    pub groups: usize,
    pub simulation: Simulation,
    /// One panel per batch size.
    pub batches: Vec<BatchPanel>,
}

/// A batch size and its learning rates.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchPanel {
    pub batch: usize,
    pub lrs: Vec<f64>,
}

impl super::Checked for Settings {
    fn check(&self) -> Result<()> {
        self.simulation.check()?;
        super::at_least("thin", self.thin, 1)?;
        if self.groups < 2 || self.simulation.chains < self.groups {
            bail!("groups must be at least 2 and at most simulation.chains");
        }
        for b in &self.batches {
            super::at_least("batches.batch", b.batch, 1)?;
        }
        Ok(())
    }
}

pub fn run(s: &Settings, ctx: &Context) -> Result<Report> {
    let device = &ctx.opened.device;
    let p = s.simulation.precision;
    device.seed(s.simulation.seed);
    let a = s.hessian;
    let k = s.simulation.chains;
    let mut table = Table::new(&[
        "S",
        "λ",
        "measured κ ± s.e. (Hill)",
        "Kesten–Goldie (exact)",
        "rel. error",
        "Ziyin et al. 2S/(aλ) − S",
        "continuous 2S/(aλ) + 1",
    ]);
    let (mut panels, mut out) = (Vec::new(), Vec::new());
    for bp in &s.batches {
        let lrs = repeat_each(&bp.lrs, k);
        let n = lrs.len();
        let mut chains = LinearChains::one_d(
            (a, 0.0, s.label_std),
            bp.batch,
            &lrs,
            &vec![0.0; n],
            device,
            p.dtype(),
        );
        let b = bar(
            ctx.quiet,
            s.simulation.burn_in + s.simulation.steps,
            &format!("tails at S = {}", bp.batch),
        );
        for _ in 0..s.simulation.burn_in {
            chains.step();
            b.inc(1);
        }
        // samples[chain] holds that chain's recorded |w − u|.
        let mut samples: Vec<Vec<f64>> = vec![Vec::new(); n];
        let thin = s.thin;
        for t in 1..=s.simulation.steps {
            chains.step();
            if t % thin == 0 {
                for (c, v) in to_host(chains.w().clone()).into_iter().enumerate() {
                    samples[c].push(v.abs());
                }
            }
            b.inc(1);
        }
        b.finish_and_clear();
        let mut measured = Points {
            name: "measured (Hill)".into(),
            points: vec![],
            color: Some(0),
        };
        let mut rows = Vec::new();
        for (j, &lr) in bp.lrs.iter().enumerate() {
            let chains_of = |g: usize| {
                let per = k / s.groups;
                (j * k + g * per..j * k + (g + 1) * per)
                    .flat_map(|c| samples[c].iter().copied())
                    .collect::<Vec<f64>>()
            };
            let diverged = (j * k..(j + 1) * k).any(|c| samples[c].iter().any(|v| !v.is_finite()));
            let estimates: Vec<f64> = (0..s.groups)
                .filter_map(|g| hill_tail_index(&chains_of(g), s.tail_fraction).map(|h| h.alpha))
                .collect();
            let stat = if diverged || estimates.len() < s.groups {
                None
            } else {
                mean_se(&estimates)
            };
            let kes = kesten_tail_index(a, lr, bp.batch);
            let (paper, cont) = tail_index(a, lr, bp.batch as f64);
            table.row(vec![
                bp.batch.to_string(),
                num(Some(lr)),
                stat.map_or("diverged".into(), |(m, se)| pm(m, se)),
                kes.map_or("no stationary law".into(), |v| num(Some(v))),
                stat.map_or("–".into(), |(m, se)| rel(m, se, kes)),
                num(Some(paper)),
                num(Some(cont)),
            ]);
            if let Some((m, se)) = stat {
                measured.points.push((lr, m, se));
            }
            rows.push(json!({
                "lr": lr, "measured": stat.map(|x| x.0), "se": stat.map(|x| x.1),
                "kesten": kes, "ziyin": paper, "continuous_time": cont,
            }));
        }
        let lo = bp.lrs.iter().cloned().fold(f64::INFINITY, f64::min) * 0.9;
        let hi = bp.lrs.iter().cloned().fold(0.0, f64::max) * 1.05;
        let grid: Vec<f64> = (0..=120)
            .map(|i| lo + (hi - lo) * i as f64 / 120.0)
            .collect();
        let mut curves = vec![
            Series::new(
                "Kesten–Goldie (exact)",
                grid.iter()
                    .map(|&l| (l, kesten_tail_index(a, l, bp.batch).unwrap_or(f64::NAN)))
                    .collect(),
            ),
            Series::new(
                "Ziyin et al.",
                grid.iter()
                    .map(|&l| (l, tail_index(a, l, bp.batch as f64).0))
                    .collect(),
            ),
            Series::new(
                "continuous time",
                grid.iter()
                    .map(|&l| (l, tail_index(a, l, bp.batch as f64).1))
                    .collect(),
            ),
        ];
        for (i, c) in curves.iter_mut().enumerate() {
            c.color = Some(i + 1);
        }
        curves[1].dashed = true;
        panels.push(Panel {
            title: format!("tail index, a = {a}, S = {}", bp.batch),
            x_label: "learning rate λ".into(),
            y_label: "tail index".into(),
            log_x: false,
            log_y: true,
            curves,
            points: vec![measured],
            vlines: vec![],
            jitter: 0.0,
            legend_low: false,
            x_ticks: vec![],
        });
        out.push(json!({"batch": bp.batch, "rows": rows}));
    }
    Ok(Report {
        summary: json!({
            "hessian": a, "label_std": s.label_std, "thin": s.thin,
            "tail_fraction": s.tail_fraction, "groups": s.groups, "simulation": s.simulation,
            "batches": out,
        }),
        table: format!(
            "{}\nκ: P(|w − u| > x) ~ x^−κ. Hill's estimator uses the top {} of the samples of each of {} disjoint groups of chains; the s.e. is their spread.\n",
            table.render(),
            s.tail_fraction,
            s.groups
        ),
        panels,
    })
}
