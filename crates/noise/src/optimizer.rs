//! The update rule: heavy-ball momentum (Ziyin et al. Definition 2) or Adam, weight decay
//! (negative allowed) and learning-rate schedules, on a flat θ.
//!
//! burn's optimizers update the parameters of a `Module` from an autodiff gradient record;
//! here θ is one flat tensor and its gradient (plus injected noise) comes from our own passes,
//! so the few lines of each rule are written out.

use burn::prelude::*;

/// A learning-rate schedule η_t = η · f(t).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind", deny_unknown_fields)]
pub enum Schedule {
    /// f = 1.
    Constant,
    /// f = factor^⌊t / every⌋.
    Step {
        /// Steps between decays.
        every: u64,
        /// Multiplier per decay.
        factor: f64,
    },
    /// f falls linearly from 1 at t = `from` (1 before) to `end` at the last step.
    Linear {
        /// f at the last step.
        end: f64,
        /// The step where the decay starts (0 unless given).
        #[serde(default)]
        from: u64,
    },
}

/// The update algorithm.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case", tag = "name", deny_unknown_fields)]
pub enum Algorithm {
    /// m_t = μ m_{t−1} + ĝ_t, θ_t = θ_{t−1} − η_t m_t (plain SGD/GD for μ = 0).
    Sgd,
    /// Adam (Kingma and Ba) with bias correction.
    Adam {
        /// β₁.
        beta1: f64,
        /// β₂.
        beta2: f64,
        /// ε.
        eps: f64,
    },
}

/// Settings of the update.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OptimizerConfig {
    /// Base learning rate η.
    pub lr: f64,
    /// Heavy-ball momentum μ ∈ [0, 1) (SGD only).
    pub momentum: f64,
    /// Weight decay γ: ĝ gets + γ θ, the gradient of (γ/2)‖θ‖². Negative values allowed.
    pub weight_decay: f64,
    /// η_t.
    pub schedule: Schedule,
    /// The rule.
    pub algorithm: Algorithm,
    /// When set to c, η is multiplied by c / d with d the model's hidden width (Ziyin et al.'s
    /// 1/width rescaling).
    pub width_scale: Option<f64>,
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        OptimizerConfig {
            lr: 0.1,
            momentum: 0.0,
            weight_decay: 0.0,
            schedule: Schedule::Constant,
            algorithm: Algorithm::Sgd,
            width_scale: None,
        }
    }
}

impl OptimizerConfig {
    /// Checks every setting for finiteness and range; the error names the field.
    pub fn check(&self) -> Result<(), String> {
        let finite = |name: &str, v: f64, ok: bool, want: &str| {
            if v.is_finite() && ok {
                Ok(())
            } else {
                Err(format!("optimizer.{name} = {v}: expected {want}"))
            }
        };
        finite("lr", self.lr, self.lr > 0.0, "a finite learning rate > 0")?;
        finite(
            "momentum",
            self.momentum,
            (0.0..1.0).contains(&self.momentum),
            "0 ≤ μ < 1",
        )?;
        finite(
            "weight_decay",
            self.weight_decay,
            true,
            "a finite γ (negative allowed)",
        )?;
        if let Some(c) = self.width_scale {
            finite("width_scale", c, c > 0.0, "a finite c > 0")?;
        }
        match self.schedule {
            Schedule::Constant => {}
            Schedule::Step { every, factor } => {
                if every == 0 {
                    return Err("optimizer.schedule.every = 0: expected ≥ 1 step".into());
                }
                finite(
                    "schedule.factor",
                    factor,
                    factor > 0.0,
                    "a finite factor > 0",
                )?;
            }
            Schedule::Linear { end, .. } => {
                finite("schedule.end", end, end >= 0.0, "a finite end ≥ 0")?;
            }
        }
        if let Algorithm::Adam { beta1, beta2, eps } = self.algorithm {
            finite(
                "algorithm.beta1",
                beta1,
                (0.0..1.0).contains(&beta1),
                "0 ≤ β₁ < 1",
            )?;
            finite(
                "algorithm.beta2",
                beta2,
                (0.0..1.0).contains(&beta2),
                "0 ≤ β₂ < 1",
            )?;
            finite("algorithm.eps", eps, eps > 0.0, "a finite ε > 0")?;
        }
        Ok(())
    }

    /// η_t at step t of `total`.
    pub fn lr_at(&self, t: u64, total: u64) -> f64 {
        let f = match self.schedule {
            Schedule::Constant => 1.0,
            Schedule::Step { every, factor } => factor.powi((t / every.max(1)) as i32),
            Schedule::Linear { end, from } => {
                let span = total.saturating_sub(1).saturating_sub(from).max(1) as f64;
                let x = (t.saturating_sub(from) as f64 / span).min(1.0);
                1.0 + (end - 1.0) * x
            }
        };
        self.lr * f
    }
}

/// The optimizer's state: momentum buffer or Adam's moments, and the step count.
#[derive(Debug, Clone, Default)]
pub struct OptimizerState {
    /// m (momentum) or Adam's first moment, [D].
    pub first: Option<Tensor<1>>,
    /// Adam's second moment, [D].
    pub second: Option<Tensor<1>>,
    /// Updates applied.
    pub t: u64,
}

/// Applies the update rule to a flat θ.
#[derive(Debug, Clone)]
pub struct Optimizer {
    /// Settings.
    pub config: OptimizerConfig,
    /// State.
    pub state: OptimizerState,
    /// Total steps of the run (for schedules that need it).
    pub total: u64,
}

impl Optimizer {
    /// A fresh optimizer for a run of `total` steps.
    pub fn new(config: OptimizerConfig, total: u64) -> Self {
        Optimizer {
            config,
            state: OptimizerState::default(),
            total,
        }
    }

    /// θ after one update with ĝ = `grad` (+ γ θ).
    ///
    /// # Shapes
    /// `theta`, `grad`: [D]; returns θ [D]. The state's buffers are [D].
    pub fn step(&mut self, theta: Tensor<1>, grad: Tensor<1>) -> Tensor<1> {
        let c = &self.config;
        let lr = c.lr_at(self.state.t, self.total);
        let g = if c.weight_decay != 0.0 {
            grad + theta.clone() * c.weight_decay
        } else {
            grad
        };
        self.state.t += 1;
        match c.algorithm {
            Algorithm::Sgd => {
                let u = if c.momentum != 0.0 {
                    let m = match self.state.first.take() {
                        Some(m) => m * c.momentum + g,
                        None => g,
                    };
                    self.state.first = Some(m.clone());
                    m
                } else {
                    g
                };
                theta - u * lr
            }
            Algorithm::Adam { beta1, beta2, eps } => {
                let m = match self.state.first.take() {
                    Some(m) => m * beta1 + g.clone() * (1.0 - beta1),
                    None => g.clone() * (1.0 - beta1),
                };
                let v = match self.state.second.take() {
                    Some(v) => v * beta2 + g.square() * (1.0 - beta2),
                    None => g.square() * (1.0 - beta2),
                };
                let t = self.state.t as i32;
                let mh = m.clone() / (1.0 - beta1.powi(t));
                let vh = v.clone() / (1.0 - beta2.powi(t));
                self.state.first = Some(m);
                self.state.second = Some(v);
                theta - mh / (vh.sqrt() + eps) * lr
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::DType;

    use super::*;

    #[allow(deprecated)]
    fn t(v: &[f64]) -> Tensor<1> {
        Tensor::from_data(
            TensorData::new(v.to_vec(), [v.len()]),
            (&Device::ndarray(), DType::F64),
        )
    }

    fn host(x: Tensor<1>) -> Vec<f64> {
        x.into_data()
            .convert::<f64>()
            .try_into_vec::<f64>()
            .unwrap()
    }

    #[test]
    fn heavy_ball_with_negative_weight_decay() {
        let cfg = OptimizerConfig {
            lr: 0.5,
            momentum: 0.9,
            weight_decay: -0.1,
            ..Default::default()
        };
        let mut opt = Optimizer::new(cfg, 10);
        // ĝ₁ = 1 − 0.1·2 = 0.8, m₁ = 0.8, θ₁ = 2 − 0.4 = 1.6;
        // ĝ₂ = 1 − 0.16 = 0.84, m₂ = 0.72 + 0.84 = 1.56, θ₂ = 1.6 − 0.78 = 0.82.
        let th = opt.step(t(&[2.0]), t(&[1.0]));
        assert!((host(th.clone())[0] - 1.6).abs() < 1e-14);
        let th = opt.step(th, t(&[1.0]));
        assert!((host(th)[0] - 0.82).abs() < 1e-14);
    }

    #[test]
    fn adam_first_step_moves_by_lr() {
        let cfg = OptimizerConfig {
            lr: 1e-3,
            algorithm: Algorithm::Adam {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
            },
            ..Default::default()
        };
        let mut opt = Optimizer::new(cfg, 10);
        let th = host(opt.step(t(&[0.0, 0.0]), t(&[3.0, -0.5])));
        assert!(
            (th[0] + 1e-3).abs() < 1e-9 && (th[1] - 1e-3).abs() < 1e-9,
            "{th:?}"
        );
    }

    #[test]
    fn schedules() {
        let mut c = OptimizerConfig {
            lr: 1.0,
            schedule: Schedule::Step {
                every: 10,
                factor: 0.5,
            },
            ..Default::default()
        };
        assert_eq!(c.lr_at(9, 100), 1.0);
        assert_eq!(c.lr_at(25, 100), 0.25);
        c.schedule = Schedule::Linear { end: 0.0, from: 0 };
        assert_eq!(c.lr_at(0, 11), 1.0);
        assert!((c.lr_at(5, 11) - 0.5).abs() < 1e-15);
        assert_eq!(c.lr_at(10, 11), 0.0);
        c.schedule = Schedule::Linear { end: 0.0, from: 5 };
        assert_eq!(c.lr_at(4, 11), 1.0);
        assert!((c.lr_at(8, 11) - 0.4).abs() < 1e-15);
    }
}
